"""
A fleet on one master: two real keepalived pairs (``lb1+lb2``, the seed's pillar, and ``api``: lb3
and lb4), learnt from their nodes' pillar by a real salt-master whose ``lbpair_reactions`` lists no
nodes; real minions for the four nodes and lb5, whose pillar claims pair ``api`` (an outsider);
BIND9, the SMTP server and the webhook receiver on loopback. Pair ``api`` has DNS records of its own.

keepalived runs only in the ``lbpair-f-*`` and ``lbpair-fa-*`` namespaces; Salt's processes and the
servers on 127.0.0.1.
"""

import copy

import pytest
import yaml

from lab import vrrp_node
from lab.salt_master import EXTENSION_DIRS, reactor_settings
from lab.salt_rig import keepalived_renderer
from lab.util import work_dir
from lab.vrrp_node import tracked_file_pillar
from tests.support.harness import Harness, start_afresh
from tests.support.pair import restore
from tests.support.session import wait_for_minion

PAIRS = {"lb1+lb2": ("lb1", "lb2"), "api": ("lb3", "lb4")}
DAMPING_WINDOW = 10
API_RECORD = "api-active"


def api_pillar(seed):
    """Pair ``api``: the seed's services on lb3 and lb4."""
    api = copy.deepcopy(seed)
    api["pair"] = "api"
    api["nodes"] = {"lb3": {"address": "192.0.2.13", "priority": 101}, "lb4": {"address": "192.0.2.14", "priority": 100}}
    return api


def outsider_pillar(seed):
    """lb5's pillar: it puts lb5 into pair api beside lb3, which api's own nodes' pillars do not."""
    outsider = api_pillar(seed)
    outsider["nodes"]["lb5"] = outsider["nodes"].pop("lb4")
    outsider["nodes"]["lb5"]["address"] = "192.0.2.15"
    return outsider


@pytest.fixture(scope="session")
def workdir():
    # Outside /tmp: each keepalived gets its own /tmp (TMPDIR) for its JSON dump.
    with work_dir("lbpair-fleet-") as path:
        yield path


@pytest.fixture(scope="session")
def keepalived_prefix():
    return "lbpair-f"


@pytest.fixture(scope="session")
def api_pair(keepalived_prefix, workdir, seed_pillar_session, salt_factories):
    """Pair api's keepalived nodes started, lb3 MASTER."""
    pillar = tracked_file_pillar(api_pillar(seed_pillar_session))
    with (
        keepalived_renderer(salt_factories, pillar) as render,
        vrrp_node.keepalived_pair(f"{keepalived_prefix}a", workdir, pillar, render) as pair,
    ):
        yield pair


@pytest.fixture(scope="session")
def pairs(keepalived_pair, api_pair):
    return {"lb1+lb2": keepalived_pair, "api": api_pair}


@pytest.fixture(scope="session")
def pillar_tree(tmp_path_factory, seed_pillar_session):
    root = tmp_path_factory.mktemp("pillar")
    tops = {"web": ["lb1", "lb2"], "api": ["lb3", "lb4"], "outsider": ["lb5"]}
    documents = {"web": seed_pillar_session, "api": api_pillar(seed_pillar_session), "outsider": outsider_pillar(seed_pillar_session)}
    top = {"base": {",".join(minions): [{"match": "list"}, name] for name, minions in tops.items()}}
    (root / "top.sls").write_text(yaml.safe_dump(top))
    for name, lbpair in documents.items():
        (root / f"{name}.sls").write_text(yaml.safe_dump({"lbpair": lbpair}))
    return root


@pytest.fixture(scope="session")
def history_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("history")


@pytest.fixture(scope="session")
def reactions(services, history_dir):
    """No nodes: the master learns both pairs from the pillar; api has DNS records of its own."""
    block = services.reactions_block(None, history_dir / "history.jsonl", damping_window=DAMPING_WINDOW,
                                     records=[{"name": "active", "type": "A", "ttl": 30}])  # fmt: skip
    block["confirm"] = {"timeout": 10, "settle": 1.5}
    block["dns"].update(attempts=3, backoff=0.5, timeout=2)
    block["pairs"] = {"api": {"dns": {**block["dns"], "records": [{"name": API_RECORD, "type": "A", "ttl": 30}]}}}
    return block


@pytest.fixture(scope="session")
def salt_master_id():
    return "lbpair-fleet-master"


@pytest.fixture(scope="session")
def salt_master_overrides(state_tree, pillar_tree, reactions):
    return {**EXTENSION_DIRS, "file_roots": {"base": [str(state_tree)]}, "pillar_roots": {"base": [str(pillar_tree)]},
            **reactor_settings(reactions)}  # fmt: skip


@pytest.fixture(scope="session")
def minion_overrides(pairs):
    nodes = {name: {**EXTENSION_DIRS, "lbpair_keepalived": pair.nodes[name].minion_options()}
             for pair in pairs.values() for name in pair.nodes}  # fmt: skip
    return {**nodes, "lb5": dict(EXTENSION_DIRS)}


@pytest.fixture
def fleet(pairs, minions, salt_master, salt_cli, services, reactions, history_dir, event_listener):
    """A fresh start per test: the first node of each pair MASTER, every minion answering, nothing recorded or received."""
    for pair in pairs.values():
        restore(pair, master=min(pair.nodes))
    for node in minions:
        wait_for_minion(salt_cli, node, timeout=120)
    start_afresh(reactions, history_dir, minions, services, DAMPING_WINDOW)
    yield Harness(pairs, minions, salt_master, services, reactions, event_listener)
    for pair in pairs.values():
        restore(pair, master=min(pair.nodes))
