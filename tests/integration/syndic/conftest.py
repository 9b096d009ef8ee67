"""
lbpair's reactions on a master of masters: a real top salt-master (``order_masters``) running
lbpair's reactor and runner, two real salt-syndics below it, each with its own salt-master, and a
node of the pair below each (lb1 below the first, lb2 below the second). No keepalived: the tests
write the nodes' journals and send their beacon events as the beacon would. All on 127.0.0.1, the
shared rigs of ``tests/support/`` (the top master is :mod:`tests.support.session`'s).
"""

import pytest

from lab.salt_master import EXTENSION_DIRS, Pillar, reactor_settings

NODES = {"lb1": "192.0.2.11", "lb2": "192.0.2.12"}
#: the syndic each node sits below
SYNDIC_OF = {"lb1": "lbpair-syndic1", "lb2": "lbpair-syndic2"}


@pytest.fixture(scope="session")
def pillar_roots(tmp_path_factory, seed_pillar_session):
    """The nodes' ``lbpair`` pillar, the same tree on every master."""
    return {"base": [str(Pillar(tmp_path_factory.mktemp("pillar"), seed_pillar_session).directory)]}


@pytest.fixture(scope="session")
def reactions(tmp_path_factory):
    """
    The top master's lbpair_reactions block: no nodes (the top master learns the pair from the
    nodes' pillar, which it compiles itself: it keeps neither their keys nor their grains), a
    history, short waits; no channels.
    """
    return {
        "history": {"path": str(tmp_path_factory.mktemp("history") / "history.jsonl")},
        "damping_window": 10,
        "confirm": {"timeout": 10, "settle": 1.5},
    }


@pytest.fixture(scope="session")
def salt_master_id():
    return "lbpair-top"


@pytest.fixture(scope="session")
def salt_master_overrides(state_tree, pillar_roots, reactions):
    """The top master: a master of masters (over tcp: see tests/support/syndic.py) with today's lbpair master configuration."""
    return {
        **EXTENSION_DIRS, "order_masters": True, "transport": "tcp", "file_roots": {"base": [str(state_tree)]}, "pillar_roots": pillar_roots,
        **reactor_settings(reactions),
    }  # fmt: skip


@pytest.fixture(scope="session")
def syndic_overrides(pillar_roots):
    """A syndic per node, the node (lbpair's modules loaded from the checkout) its only minion."""
    return {
        syndic: {"master": {"pillar_roots": pillar_roots}, "minions": {node: dict(EXTENSION_DIRS)}}
        for node, syndic in SYNDIC_OF.items()
    }
