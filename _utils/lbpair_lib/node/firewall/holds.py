"""
Holding new connections during a planned hand-over: a rule at the top of the chain,
commented ``lbpair-handover``, drops (not refuses) new TCP connections to the VIPs
leaving this node, until released; a release removes every such rule, also one a crash left.
"""

from lbpair_lib.core import command
from lbpair_lib.node.firewall import iptables, nftables, ruleset

HOLD_COMMENT = "lbpair-handover"


def hold_new_connections(model, vips):
    """
    Drop (not refuse) new TCP connections to ``vips`` on this node: a client sends
    its SYN again a second later, by then to the node that took the VIPs over.
    """
    if model["firewall"]["backend"] == "iptables":
        for family, addresses in _by_family(model, vips).items():
            command.run([iptables.IPTABLES[family], "-I", "INPUT", "1", *_hold_spec(addresses)], check=True)
        return
    nftables.ensure_chain(model)
    family, table, chain = nftables.chain(model)
    for address_family, addresses in _by_family(model, vips).items():
        match = f"{nftables.DESTINATION_MATCH[address_family]} {{ {', '.join(addresses)} }} tcp flags & (syn | ack) == syn"
        command.run(["nft", f'insert rule {family} {table} {chain} {match} drop comment "{HOLD_COMMENT}"'], check=True)


def release_new_connections(model):
    """
    Remove every hold rule in the chains the backend uses, found by its comment:
    what :func:`hold_new_connections` added, and any hold a crash left behind, for
    VIPs since changed too. Returns how many rules were removed.
    """
    if model["firewall"]["backend"] == "iptables":
        holds = [[binary, "-D", *rule] for binary in iptables.IPTABLES.values() for rule in holds_in_iptables(iptables.listing(binary))]
    else:
        holds = [["nft", "delete", "rule", *nftables.chain(model), "handle", handle] for handle in holds_in_nft(nftables.listing(model))]
    for deletion in holds:
        command.run(deletion, check=True)
    return len(holds)


def holds_in_iptables(listing):
    """The hold rules in ``iptables -S INPUT`` output, each as its arguments after ``-A`` (to give to ``-D``)."""
    return [rule for rule in iptables.iptables_rules(listing) if iptables.comment_of(rule) == HOLD_COMMENT]


def holds_in_nft(listing):
    """The handles of the hold rules in ``nft -a list chain`` output."""
    return [
        handle.group(1)
        for line in listing.splitlines()
        if f'comment "{HOLD_COMMENT}"' in line and (handle := nftables.NFT_HANDLE_RE.search(line))
    ]


def _by_family(model, vips):
    """``{family: [vip, ...]}`` of the families the backend filters (an ``ip`` nft table sees no IPv6)."""
    families = {}
    for vip in vips:
        families.setdefault("ipv6" if ":" in vip else "ipv4", []).append(vip)
    return {family: addresses for family, addresses in families.items() if family in ruleset.drop_families(model)}


def _hold_spec(vips):
    return ["-p", "tcp", "--syn", "-d", ",".join(vips), "-m", "comment", "--comment", HOLD_COMMENT, "-j", "DROP"]
