"""
``salt-run lbpair.check_config`` on a master's configuration and pillar (no daemons): a DNS
record that follows an instance is checked against the instances of the pair's pillars,
as the master compiles them for the nodes of ``lbpair_reactions:nodes``.
"""

import copy

import pytest
import salt.loader
import yaml
from salt.exceptions import SaltInvocationError

from tests.conftest import EXTENSION_DIRS, REPO
from tests.unit.test_active_active import active_active


@pytest.fixture(scope="module")
def factory_opts(salt_factories):
    return salt_factories.salt_master_daemon("check-config", overrides=dict(EXTENSION_DIRS)).config.copy()


@pytest.fixture
def check_config(factory_opts, seed_pillar, tmp_path):
    """``lbpair.check_config`` of a master whose pillar gives lb1 and lb2 the active/active seed, with ``records``."""
    (tmp_path / "top.sls").write_text("base:\n  'lb*':\n    - lbpair\n")
    (tmp_path / "lbpair.sls").write_text(yaml.safe_dump({"lbpair": active_active(seed_pillar)}))
    block = yaml.safe_load((REPO / "salt" / "master.d" / "lbpair.conf").read_text())["lbpair_reactions"]

    def run(records):
        opts = copy.deepcopy(factory_opts)
        opts["pillar_roots"] = {"base": [str(tmp_path)]}
        opts["lbpair_reactions"] = {**block, "dns": {**block["dns"], "records": records}}
        runners = salt.loader.runner(opts, utils=salt.loader.utils(opts))
        return runners["lbpair.check_config"]()

    return run


def test_a_record_following_an_instance_of_the_pair_passes(check_config):
    shown = check_config([{"name": "api", "type": "A", "instance": "lbpair_52"}])
    assert shown["dns"]["records"][0]["instance"] == "lbpair_52"
    assert shown["dns"]["key_secret"] == "**********"


def test_a_record_following_an_instance_no_pair_has_is_refused(check_config):
    with pytest.raises(SaltInvocationError, match="records:0:instance: lbpair_53 is not an instance of the pair.*lbpair_51, lbpair_52"):
        check_config([{"name": "api", "type": "A", "instance": "lbpair_53"}])
