"""
The firewall rules that let the nodes of an lbpair pair see each other's VRRP
adverts (IP protocol 112) and nobody else's, keep HAProxy's peers port to the pair and its
Prometheus exporter to the networks the pillar allows,
record rogue VRRP senders and hold new connections during a planned hand-over.

- :mod:`.ruleset`: the VRRP rules a node needs, their order, the plan of what to change;
- :mod:`.iptables`, :mod:`.nftables`: the backends (pillar ``lbpair:firewall:backend``);
- :mod:`.rogue`: the record of the senders the record rules dropped;
- :mod:`.holds`: the hand-over's connection holds;
- :mod:`.peers`: the peers-port rules, a second kind of rules applied the same way;
- :mod:`.exporter`: the rules of HAProxy's Prometheus exporter, a third kind (its ``allow`` networks only).

This module is what the Salt adapters and the other modules use.
"""

import collections

from saltext.lbpair.node.firewall import iptables, nftables, ruleset
from saltext.lbpair.node.firewall.holds import hold_new_connections, release_new_connections
from saltext.lbpair.node.firewall.rogue import rogue_senders
from saltext.lbpair.node.firewall.ruleset import Rule, drop_families, wanted_rules

__all__ = [
    "VRRP", "Rule", "allow", "drop_families", "hold_new_connections", "release_new_connections", "rogue_senders", "rules", "wanted_rules",
]  # fmt: skip

VRRP = ruleset.Kind(ruleset.COMMENT_RE, wanted_rules, iptables.iptables_spec, nftables.nft_rule)
#: a backend: ``current(model, kind)`` gives ``{comment: handle}`` of the rules of ``kind`` in chain order,
#: ``apply(model, kind, current, to_add, to_delete)`` makes the change
Backend = collections.namedtuple("Backend", "current apply")
BACKENDS = {
    "iptables": Backend(iptables.current, iptables.apply),
    "nftables": Backend(nftables.current, nftables.apply),
}


def _backend(model):
    return BACKENDS[model["firewall"]["backend"]]


def rules(model, kind=VRRP):
    """The VRRP rules (or those of ``kind``) this node needs, each with whether it is in place: ``{comment: bool}``."""
    to_add, _ = ruleset.plan(_backend(model).current(model, kind), kind.wanted(model))
    return {comment: comment not in to_add for comment in kind.wanted(model)}


def allow(model, test=False, kind=VRRP):
    """
    Add the missing VRRP rules (or those of ``kind``: accept rules first, then the record
    and drop rules) and remove lbpair's rules for nodes no longer in the pair.
    Returns ``{"added": [...], "removed": [...]}`` (what would change, with ``test``).
    """
    backend = _backend(model)
    current = backend.current(model, kind)
    to_add, to_delete = ruleset.plan(current, kind.wanted(model))
    if not test:
        backend.apply(model, kind, current, to_add, to_delete)
    return {"added": sorted(to_add), "removed": sorted(to_delete)}
