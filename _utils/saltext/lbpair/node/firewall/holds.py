"""
Holding new connections during a planned hand-over: a rule at the top of the chain,
commented ``lbpair-handover``, drops (not refuses) new TCP connections to the VIPs
leaving this node, until released; a release removes every such rule, also one a crash left.
With nftables the holds of all families go in as one batch, and so does their release.
"""

from saltext.lbpair.core import command
from saltext.lbpair.node.firewall import iptables, nftables, ruleset

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
    where = " ".join(nftables.chain(model))
    holds = [
        f"insert rule {where} {nftables.DESTINATION_MATCH[family]} {{ {', '.join(addresses)} }} "
        f'tcp flags & (syn | ack) == syn drop comment "{HOLD_COMMENT}"'
        for family, addresses in _by_family(model, vips).items()
    ]
    nftables.run_batch([*nftables.chain_creation(model), *holds])


def release_new_connections(model):
    """
    Remove every hold rule in the chains the backend uses, found by its comment:
    what :func:`hold_new_connections` added, and any hold a crash left behind, for
    VIPs since changed too. Returns how many rules were removed.
    """
    if model["firewall"]["backend"] == "iptables":
        holds = [[binary, "-D", *rule] for binary in iptables.IPTABLES.values() for rule in holds_in_iptables(iptables.listing(binary))]
        for deletion in holds:
            command.run(deletion, check=True)
        return len(holds)
    where = " ".join(nftables.chain(model))
    handles = holds_in_nft(nftables.listing(model) or "")
    nftables.run_batch([f"delete rule {where} handle {handle}" for handle in handles])
    return len(handles)


def holds_in_iptables(listing):
    """The hold rules in ``iptables -S INPUT`` output, each as its arguments after ``-A`` (to give to ``-D``)."""
    return [rule for rule in iptables.iptables_rules(listing) if iptables.comment_of(rule) == HOLD_COMMENT]


def holds_in_nft(listing):
    """The handles of the hold rules in ``nft -j list chain`` output."""
    return [handle for handle, comment in nftables.chain_rules(listing) if comment == HOLD_COMMENT]


def _by_family(model, vips):
    """``{family: [vip, ...]}`` of the families the backend filters (an ``ip`` nft table sees no IPv6)."""
    families = {}
    for vip in vips:
        families.setdefault("ipv6" if ":" in vip else "ipv4", []).append(vip)
    return {family: addresses for family, addresses in families.items() if family in ruleset.drop_families(model)}


def _hold_spec(vips):
    return ["-p", "tcp", "--syn", "-d", ",".join(vips), "-m", "comment", "--comment", HOLD_COMMENT, "-j", "DROP"]
