"""
A keepalived pair without machines (:mod:`lab.vrrp_node`): the seed pillar's two nodes in network
namespaces named ``<keepalived_prefix>-<node>``, each on its own dbus-daemon, the VRRP check a
file test, configured through ``lbpair_keepalived.render``. The suite gives ``keepalived_prefix``
(its own, so that suites running side by side never share a namespace) and ``workdir``.
"""

import pytest

from lab import netns, vrrp_node
from lab.salt_rig import keepalived_renderer
from lab.vrrp_node import tracked_file_pillar


@pytest.fixture(scope="session")
def keepalived_pair(keepalived_prefix, workdir, seed_pillar_session, salt_factories):
    """The pair started, lb1 MASTER (:class:`lab.vrrp_node.Pair`)."""
    pillar = tracked_file_pillar(seed_pillar_session)
    with (
        keepalived_renderer(salt_factories, pillar) as render,
        vrrp_node.keepalived_pair(keepalived_prefix, workdir, pillar, render) as pair,
    ):
        yield pair


def restore(pair, master="lb1"):
    """Undo what a test broke (link down, VRRP dropped) and make *master* MASTER with both nodes healthy."""
    for node in pair.nodes.values():
        netns.ip(node.namespace, "link", "set", "eth0", "up")
        netns.run(node.namespace, ["iptables", "-F", "INPUT"])
    pair.make_master(master)
    for node in pair.nodes.values():
        node.set_healthy(True)
