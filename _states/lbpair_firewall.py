"""
State for the firewall rules that let the nodes of an lbpair pair exchange
VRRP, and drop anyone else's on the pair's interface.

.. code-block:: yaml

    VRRP from the other node is accepted, from anyone else dropped:
      lbpair_firewall.vrrp_allowed
"""

from saltext.lbpair.core import results
from saltext.lbpair.model import pillar
from saltext.lbpair.node import firewall
from saltext.lbpair.node.firewall import exporter, peers

__virtualname__ = "lbpair_firewall"


def __virtual__():
    return __virtualname__


def _apply(test, allow=firewall.allow, what="VRRP"):
    model = pillar.minion_model(__pillar__, __opts__, __context__)
    changes = {key: rules for key, rules in allow(model, test=test).items() if rules}
    if not changes:
        return {"result": True, "comment": f"{what} rules are in place"}
    if test:
        return {"result": None, "comment": f"{what} rules would be changed", "changes": changes}
    return {"result": True, "comment": f"{what} rules changed", "changes": changes}


def vrrp_allowed(name):
    """
    Accept VRRP (IP protocol 112) from the other nodes of the pair, and only
    from them: after the accept rules, VRRP from any other address on the
    pair's interface is dropped, whatever the chain's policy, and its sender
    recorded if it carries one of the pair's VRIDs
    (``lbpair_firewall.rogue_senders``). Removes lbpair's rules for nodes that
    left. Backend and chain come from ``lbpair:firewall`` in the pillar.

    name
        The state's name; free text.
    """
    return results.state(name, lambda: _apply(__opts__["test"]))


def peers_allowed(name):
    """
    Accept TCP to HAProxy's peers port (``lbpair:haproxy:peers_port``) from the nodes
    of the pair, and drop it from anyone else; no rules (and lbpair's old ones removed)
    when no pool uses stick tables.

    name
        The state's name; free text.
    """
    return results.state(name, lambda: _apply(__opts__["test"], peers.allow, "Peers port"))


def prometheus_allowed(name):
    """
    Accept TCP to HAProxy's Prometheus exporter (``lbpair:haproxy:prometheus``: this node's
    exporter address and port) from the ``allow`` networks, and drop it from anyone else; no
    rules (and lbpair's old ones removed) without an exporter.

    name
        The state's name; free text.
    """
    return results.state(name, lambda: _apply(__opts__["test"], exporter.allow, "Prometheus exporter"))
