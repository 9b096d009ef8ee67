"""
The firewall rules that keep HAProxy's ``peers`` port (``lbpair:haproxy:peers_port``) to
the nodes of the pair: the peers protocol has no authentication, so anyone reaching it
could write stick-table entries.

Per address family, a rule accepts TCP to this node's address at the peers port from each
node of the pair (the node itself too: on a reload the old HAProxy hands its tables to the
new one through that port), then a drop rule drops TCP to that address and port from
everyone else. No rules when no pool uses stick tables (no ``peers`` section).

Each rule carries a comment, ``lbpair-peers <source> to <destination> port <port>`` or
``lbpair-peers drop <ipv4|ipv6> to <destination> port <port>``, distinct from the VRRP
rules' ``lbpair-vrrp`` ones so that neither set removes the other's.
The backends of :mod:`saltext.lbpair.node.firewall` apply them.
"""

import collections
import re

from saltext.lbpair.node import firewall, haproxy
from saltext.lbpair.node.firewall import nftables, ruleset

COMMENT_PREFIX = "lbpair-peers"
ACCEPT_COMMENT = r"lbpair-peers ([0-9a-f.:]+) to ([0-9a-f.:]+) port ([0-9]+)"
DROP_COMMENT = r"lbpair-peers drop (ipv[46]) to ([0-9a-f.:]+) port ([0-9]+)"
COMMENT_RE = re.compile(f'"((?:{ACCEPT_COMMENT})|(?:{DROP_COMMENT}))"')

#: one rule: ``action`` accept (TCP from ``source``) or drop (from anyone else), to ``destination`` at ``port``
#: (:mod:`~saltext.lbpair.node.firewall.exporter` uses them too; its ``destination`` None: any)
Rule = collections.namedtuple("Rule", "action family source destination port")


def wanted_rules(model):
    """``{comment: Rule}`` of every peers rule this node needs, in chain order: accept rules, then drop rules."""
    if not haproxy._uses_peers(model):  # noqa: SLF001  (one place says when the peers section exists)
        return {}
    port = model["haproxy"]["peers_port"]
    accepts, drops = {}, {}
    for family in ruleset.drop_families(model):
        field = ruleset.ADDRESS_FIELD[family]
        destination = model["node"][field]
        if not destination:
            continue
        for node in sorted(model["nodes"].values(), key=lambda node: node["address"]):
            if source := node[field]:
                accepts[f"{COMMENT_PREFIX} {source} to {destination} port {port}"] = Rule("accept", family, source, destination, port)
        drops[f"{COMMENT_PREFIX} drop {family} to {destination} port {port}"] = Rule("drop", family, None, destination, port)
    return {**accepts, **drops}


def iptables_spec(rule, comment):
    """The iptables arguments of one rule, after ``-I INPUT <position>`` (no ``-d`` for a ``destination`` of None: any)."""
    source = ["-s", rule.source] if rule.action == "accept" else []
    target = "ACCEPT" if rule.action == "accept" else "DROP"
    destination = ["-d", rule.destination] if rule.destination else []
    tcp = [*destination, "-p", "tcp", "--dport", str(rule.port)]
    return [*source, *tcp, "-m", "comment", "--comment", comment, "-j", target]


def nft_rule(rule, comment):
    """The nft rule text for one rule (a ``destination`` of None: any address of the rule's family)."""
    source = f"{nftables.SOURCE_MATCH[rule.family]} {rule.source} " if rule.action == "accept" else ""
    if rule.destination:
        destination = f"{nftables.DESTINATION_MATCH[rule.family]} {rule.destination}"
    else:  # an inet table sees both families: the family still matched
        destination = f"meta protocol {nftables.PACKET_PROTOCOL[rule.family]}"
    return f'{source}{destination} tcp dport {rule.port} {rule.action} comment "{comment}"'


PEERS = ruleset.Kind(COMMENT_RE, wanted_rules, iptables_spec, nft_rule)


def rules(model):
    """The peers rules this node needs, each with whether it is in place: ``{comment: bool}``."""
    return firewall.rules(model, PEERS)


def allow(model, test=False):
    """Add the missing peers rules, remove stale ones; ``{"added": [...], "removed": [...]}``."""
    return firewall.allow(model, test=test, kind=PEERS)
