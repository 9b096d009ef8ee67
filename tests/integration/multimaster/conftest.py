"""
Two hot masters and minions with ``master: [m1, m2]`` (``master_type: str``, Salt's default):
the rig of the multi-master facts (docs/facts-multimaster.md).

m1 listens on 127.0.0.1 and m2 on 127.0.0.2 (loopback holds all of 127/8: no address is added),
both on the same ports and with the same key pair, as Salt's own multi-master tests set them up.
Both accept the minions' keys. The minions run ``mm_tick``, a beacon that numbers its events.
"""

import pathlib
import shutil

import pytest

from lab.salt_rig import started_master

HERE = pathlib.Path(__file__).resolve().parent
MINION = "lbpair-mm-minion"


@pytest.fixture(scope="module")
def master_1(salt_factories):
    with started_master(salt_factories, "lbpair-mm-1", {}) as master:
        yield master


@pytest.fixture(scope="module")
def master_2(salt_factories, master_1):
    ports = {key: master_1.config[key] for key in ("ret_port", "publish_port")}
    factory = salt_factories.salt_master_daemon(
        "lbpair-mm-2", overrides={"interface": "127.0.0.2", "auto_accept": True, **ports}
    )
    for name in ("master.pem", "master.pub"):
        shutil.copyfile(pathlib.Path(master_1.config["pki_dir"], name), pathlib.Path(factory.config["pki_dir"], name))
    with factory.started():
        yield factory


def minion_factory(master_1, master_2, minion_id, **options):
    """
    A minion of both masters, ``mm_tick`` on; *options* over that. Made by m2's factory: its
    start is checked on m2's bus, so it can start while m1 is down.
    """
    port = master_1.config["ret_port"]
    overrides = {
        "master": [f"{master_1.config['interface']}:{port}", f"{master_2.config['interface']}:{port}"],
        # as an operator sets it when both masters publish on one port: status.master looks at it
        "publish_port": master_1.config["publish_port"],
        "beacons_dirs": [str(HERE / "_beacons")],
        "beacons": {"mm_tick": []},  # every second: no interval (counted in loop_interval units)
        **options,
    }
    return master_2.salt_minion_daemon(minion_id, overrides=overrides)


@pytest.fixture(scope="module")
def minion(master_1, master_2):
    with minion_factory(master_1, master_2, MINION).started() as started:
        yield started
