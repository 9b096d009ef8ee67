"""
The firewall rules that keep HAProxy's Prometheus exporter (``lbpair:haproxy:prometheus``) to the
networks the operator names in its ``allow``: the exporter has no authentication, and its series
name every service, backend and server of the pair.

For the exporter's address family, a rule accepts TCP to this node's exporter address at its port
from each ``allow`` network, in the pillar's order, then a drop rule drops TCP to that address and
port from everyone else. A wildcard address (``0.0.0.0``, ``::``) matches any destination of its
family. No rules when there is no exporter (and lbpair's old ones are removed).

Each rule carries a comment, ``lbpair-prometheus <network> to <address> port <port>`` or
``lbpair-prometheus drop <ipv4|ipv6> to <address> port <port>``, distinct from the VRRP and peers
rules' so that no set removes another's. The rules are those of
:mod:`~saltext.lbpair.node.firewall.peers` (TCP to an address and port), applied by the backends of
:mod:`saltext.lbpair.node.firewall`.

.. code-block:: yaml

    lbpair:
      haproxy:
        prometheus: {port: 8404, allow: [198.51.100.0/28]}
    # on lb1 (address 192.0.2.11):
    #   lbpair-prometheus 198.51.100.0/28 to 192.0.2.11 port 8404   accept
    #   lbpair-prometheus drop ipv4 to 192.0.2.11 port 8404          drop
"""

import re

from saltext.lbpair.model import haproxy_exporter
from saltext.lbpair.node import firewall
from saltext.lbpair.node.firewall import peers, ruleset
from saltext.lbpair.node.firewall.peers import Rule

COMMENT_PREFIX = "lbpair-prometheus"
ACCEPT_COMMENT = r"lbpair-prometheus ([0-9a-f.:]+/[0-9]+) to ([0-9a-f.:]+) port ([0-9]+)"
DROP_COMMENT = r"lbpair-prometheus drop (ipv[46]) to ([0-9a-f.:]+) port ([0-9]+)"
COMMENT_RE = re.compile(f'"((?:{ACCEPT_COMMENT})|(?:{DROP_COMMENT}))"')


def wanted_rules(model):
    """``{comment: Rule}`` of every exporter rule this node needs, in chain order: accept rules, then the drop rule."""
    prometheus = model["haproxy"]["prometheus"]
    if prometheus is None:
        return {}
    address, port = prometheus["addresses"][model["node"]["name"]], prometheus["port"]
    family = haproxy_exporter.family(address)
    if family not in ruleset.drop_families(model):  # the pillar refuses it: the exporter would be open
        return {}
    destination = None if haproxy_exporter.is_wildcard(address) else address
    rules = {
        f"{COMMENT_PREFIX} {network} to {address} port {port}": Rule("accept", family, network, destination, port)
        for network in prometheus["allow"]
    }
    rules[f"{COMMENT_PREFIX} drop {family} to {address} port {port}"] = Rule("drop", family, None, destination, port)
    return rules


EXPORTER = ruleset.Kind(COMMENT_RE, wanted_rules, peers.iptables_spec, peers.nft_rule)


def rules(model):
    """The exporter's rules this node needs, each with whether it is in place: ``{comment: bool}``."""
    return firewall.rules(model, EXPORTER)


def allow(model, test=False):
    """Add the missing exporter rules, remove stale ones; ``{"added": [...], "removed": [...]}``."""
    return firewall.allow(model, test=test, kind=EXPORTER)
