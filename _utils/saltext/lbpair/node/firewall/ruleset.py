"""
The VRRP rule model: which rules a node needs, in which order, and what to change.

For each other node, a rule accepts its adverts (IPv4 from its ``address``, and
IPv6 from its ``address6`` if it has one, to ff02::12: the instances of IPv6 VIPs);
after them, per address family, a record rule drops the other adverts arriving on
the pair's interface that carry one of the pair's VRIDs (VRRP header byte 1) and
records their source: a host on the segment sending the pair's VRID with a higher
priority would otherwise take the virtual IPs. Last, a drop rule drops every other
VRRP packet arriving there, whatever the chain's policy, without recording it: other
VRRP routers on a shared segment, with VRIDs of their own, are no threat. Each rule
matches one address family. The VRID is read behind the fixed IPv6 header: an IPv6
advert behind extension headers (keepalived sends none) is dropped, not recorded.

Each rule carries a comment, ``lbpair-vrrp <peer> to <destination>``,
``lbpair-vrrp record <ipv4|ipv6> vrid <vrid,...> on <interface>`` or
``lbpair-vrrp drop <ipv4|ipv6> on <interface>``, which is how lbpair finds its own
rules again; rules for nodes that left the pair (or of VRIDs it no longer uses) are
removed, and record and drop rules out of order (one before an accept rule would
drop the peer; a drop rule before a record rule would leave nothing to record) are
put back after the accept rules, in order.
"""

import collections
import re

VRRP_PROTOCOL = "112"
VRRP_MULTICAST = "224.0.0.18"
#: where each family's VRRP goes (multicast), and the node's address it is sent from
MULTICAST = {"ipv4": VRRP_MULTICAST, "ipv6": "ff02::12"}
ADDRESS_FIELD = {"ipv4": "address", "ipv6": "address6"}
FAMILIES = ("ipv4", "ipv6")
#: the address families an nft table of each family sees
NFT_FAMILIES = {"ip": ("ipv4",), "ip6": ("ipv6",), "inet": FAMILIES}
COMMENT_PREFIX = "lbpair-vrrp"
ACCEPT_COMMENT = r"lbpair-vrrp ([0-9a-f.:]+) to ([0-9a-f.:]+)"
RECORD_COMMENT = r"lbpair-vrrp record (ipv[46]) vrid ([0-9,]+) on ([A-Za-z0-9_.-]+)"
DROP_COMMENT = r"lbpair-vrrp drop (ipv[46]) on ([A-Za-z0-9_.-]+)"
#: our comments, quoted as a listing shows them (group 1 is the comment)
COMMENT_RE = re.compile(f'"((?:{ACCEPT_COMMENT})|(?:{RECORD_COMMENT})|(?:{DROP_COMMENT}))"')

#: one rule: ``action`` accept (``source`` to ``destination``), record (adverts of ``vrids`` on ``interface``)
#: or drop (on ``interface``), of address ``family``
Rule = collections.namedtuple("Rule", "action family source destination interface vrids", defaults=(None,))

#: what one set of rules is: how its comments are found, which rules are wanted, their iptables and nft texts
Kind = collections.namedtuple("Kind", "comments wanted iptables_spec nft_rule")


def is_ours(comment, pattern=COMMENT_RE):
    """Whether a rule's bare ``comment`` (as ``nft -j`` gives it) is one of ``pattern``'s, all of it."""
    return isinstance(comment, str) and pattern.fullmatch(f'"{comment}"') is not None


def drop_families(model):
    """The address families whose VRRP the backend filters: ``("ipv4", "ipv6")`` or one of them."""
    if model["firewall"]["backend"] == "iptables":
        return FAMILIES
    return NFT_FAMILIES[model["firewall"]["nft_table"].split()[0]]


def _accept_rules(model, family):
    """The accept rules of ``family``: from each peer that has an address of that family, to this node's."""
    field = ADDRESS_FIELD[family]
    destination = model["node"][field] if model["vrrp"]["unicast"] else MULTICAST[family]
    sources = [peer[field] for peer in model["peers"].values() if peer[field] and destination]
    return {f"{COMMENT_PREFIX} {source} to {destination}": Rule("accept", family, source, destination, None) for source in sources}


def wanted_rules(model):
    """``{comment: Rule}`` for every VRRP rule this node needs, in chain order: accept, record, drop rules."""
    accepts = {comment: rule for family in drop_families(model) for comment, rule in _accept_rules(model, family).items()}
    interface, vrids = model["vrrp"]["interface"], _vrids(model)
    records = {
        f"{COMMENT_PREFIX} record {family} vrid {vrids} on {interface}": Rule("record", family, None, None, interface, vrids)
        for family in drop_families(model)
    }
    drops = {
        f"{COMMENT_PREFIX} drop {family} on {interface}": Rule("drop", family, None, None, interface)
        for family in drop_families(model)
    }
    return {**accepts, **records, **drops}


def _vrids(model):
    """The VRIDs of the pair's instances, as the record rules name them: ``51,52``."""
    return ",".join(str(vrid) for vrid in sorted({instance["virtual_router_id"] for instance in model["vrrp"]["instances"].values()}))


def misplaced(current, wanted):
    """
    The record and drop rules of ``current`` (comments in chain order) to put back.
    Each rule matches one address family, so the order that matters is within a family.
    """
    found = set()
    for family in {rule.family for rule in wanted.values()}:
        ours = {comment: rule for comment, rule in wanted.items() if rule.family == family}
        found |= _misplaced_in_family([comment for comment in current if comment in ours], ours)
    return found


def _misplaced_in_family(kept, wanted):
    """
    Those of the record and drop rules ``kept`` (comments in chain order) that come
    before one of the accept rules, or from the first one out of the order of
    ``wanted`` on: a rule is added after our last, so the ones kept must come first.
    """
    accepts = [index for index, comment in enumerate(kept) if wanted[comment].action == "accept"]
    after_accepts = kept[max(accepts, default=-1) + 1 :]
    in_order = [comment for comment, rule in wanted.items() if rule.action != "accept"]
    placed = next((index for index, comment in enumerate(after_accepts) if comment != in_order[index]), len(after_accepts))
    return {comment for comment in kept if wanted[comment].action != "accept"} - set(after_accepts[:placed])


def plan(current, wanted):
    """
    ``(to_add, to_delete)``: the ``wanted`` rules (``{comment: Rule}``, in chain order) missing
    or out of place, and the rules of ``current`` (``{comment: handle}``) no longer wanted or out of place.
    """
    out_of_place = misplaced(current, wanted)
    to_add = {comment: rule for comment, rule in wanted.items() if comment not in current or comment in out_of_place}
    to_delete = {comment: handle for comment, handle in current.items() if comment not in wanted or comment in out_of_place}
    return to_add, to_delete
