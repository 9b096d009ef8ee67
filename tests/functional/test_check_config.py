"""
``salt-run lbpair.check_config`` on a master's configuration and pillar (no daemons): a DNS
record that follows an instance is checked against the instances of the pair's pillars,
as the master compiles them for the nodes it finds (or those of ``lbpair_reactions:nodes``).
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


ONE_PAIR = {"lb1": {"address": "192.0.2.11"}, "lb2": {"address": "192.0.2.12"}}


@pytest.fixture(params=["pillar", "nodes"])
def check_config(request, factory_opts, seed_pillar, tmp_path):
    """
    ``lbpair.check_config`` of a master whose pillar gives lb1 and lb2 the active/active seed, with
    ``records``; the pair found from the pillars of the minions whose keys it accepted, or listed
    in ``lbpair_reactions:nodes`` (as before pairs came from pillar).
    """
    (tmp_path / "top.sls").write_text("base:\n  'lb*':\n    - lbpair\n")
    (tmp_path / "lbpair.sls").write_text(yaml.safe_dump({"lbpair": active_active(seed_pillar)}))
    block = yaml.safe_load((REPO / "salt" / "master.d" / "lbpair.conf").read_text())["lbpair_reactions"]
    if request.param == "nodes":
        block["nodes"] = ONE_PAIR

    def run(records, minions=("lb1", "lb2")):
        opts = copy.deepcopy(factory_opts)
        opts["pillar_roots"] = {"base": [str(tmp_path)]}
        opts["pki_dir"] = str(tmp_path / "pki")
        opts["cachedir"] = str(tmp_path / "cache")
        accepted = tmp_path / "pki" / "minions"
        accepted.mkdir(parents=True, exist_ok=True)
        for minion in minions:
            (accepted / minion).write_text("a key")
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


def test_the_fleet_is_shown_with_what_it_leaves_out(check_config, request):
    if request.node.callspec.params["check_config"] == "nodes":
        pytest.skip("one pair listed in the master's configuration: no fleet to show")
    shown = check_config([{"name": "active", "type": "A"}], minions=("lb1", "lb2", "lb3"))
    assert shown["fleet"]["pairs"] == {"lb1+lb2": {"nodes": ["lb1", "lb2"], "instances": ["lbpair_51", "lbpair_52"]}}
    assert "lb3" in shown["fleet"]["left_out"] and "an outsider" not in shown["fleet"]["left_out"]["lb3"]
    assert "'lb3' is not among the nodes of its own pillar" in shown["fleet"]["left_out"]["lb3"]
