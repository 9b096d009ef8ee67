"""
The ``nftables`` backend: rules at the top of the chain named by ``lbpair:firewall:nft_table``
and ``nft_chain`` (default ``inet filter`` / ``input``, Debian's own), created
if it does not exist. A separate table would not help: a drop in the user's
chain still drops what another table accepted. The record rules match the VRID
with ``@th,8,8`` and add senders to the sets ``lbpair_rogue_v4`` / ``lbpair_rogue_v6``
of that table, for an hour.
An ``ip`` (``ip6``) table sees IPv4 (IPv6) only; ``inet`` covers both.

The chain is read with ``nft -j list chain`` (each rule's handle and comment, as JSON), and each
change (creating the chain, the sets, every rule added and deleted) goes in as one ``nft -f -``
batch: one kernel transaction, so the chain holds all of the change or none of it, whatever
kills nft midway. Within a batch, positions and handles are those read before it.
Salt's own ``nftables`` module is not used: it renders a ``vrrp`` protocol rule as a bare ``accept``.
"""

import json

from saltext.lbpair.core import command
from saltext.lbpair.node.firewall import ruleset

ROGUE_SETS = {"ipv4": "lbpair_rogue_v4", "ipv6": "lbpair_rogue_v6"}
ROGUE_SET_TYPES = {"ipv4": "ipv4_addr", "ipv6": "ipv6_addr"}
ROGUE_TIMEOUT = "1h"
SOURCE_MATCH = {"ipv4": "ip saddr", "ipv6": "ip6 saddr"}
DESTINATION_MATCH = {"ipv4": "ip daddr", "ipv6": "ip6 daddr"}
#: the packet's own protocol (not ``meta nfproto``: nft takes that in an ``inet`` table only)
PACKET_PROTOCOL = {"ipv4": "ip", "ipv6": "ip6"}
# Not ``meta l4proto``: nft 1.0.6 cannot list that rule followed by a set of ``@th`` values (it aborts).
VRRP_MATCH = {"ipv4": "ip protocol " + ruleset.VRRP_PROTOCOL, "ipv6": "ip6 nexthdr " + ruleset.VRRP_PROTOCOL}
ACCEPT_MATCH = {
    "ipv4": "ip saddr {} ip daddr {} ip protocol " + ruleset.VRRP_PROTOCOL,
    "ipv6": "ip6 saddr {} ip6 daddr {} meta l4proto " + ruleset.VRRP_PROTOCOL,
}


def nft_rule(rule, comment):
    """The nft rule text for one VRRP rule."""
    if rule.action == "accept":
        return f'{ACCEPT_MATCH[rule.family].format(rule.source, rule.destination)} accept comment "{comment}"'
    arriving = f'iifname "{rule.interface}"'
    if rule.action == "drop":  # meta l4proto: VRRP behind IPv6 extension headers too
        return f'{arriving} meta protocol {PACKET_PROTOCOL[rule.family]} meta l4proto {ruleset.VRRP_PROTOCOL} drop comment "{comment}"'
    vrid = f"@th,8,8 {{ {rule.vrids.replace(',', ', ')} }}"
    record = f"add @{ROGUE_SETS[rule.family]} {{ {SOURCE_MATCH[rule.family]} }}"
    return f'{arriving} {VRRP_MATCH[rule.family]} {vrid} {record} drop comment "{comment}"'


def nft_rogue_set(family):
    """The nft definition of the set a record rule of ``family`` records senders in."""
    return f"{{ type {ROGUE_SET_TYPES[family]}; flags dynamic,timeout; timeout {ROGUE_TIMEOUT}; }}"


def chain_rules(text):
    """``[(handle, comment), ...]`` of the rules in ``nft -j list chain`` output, in chain order (comment None without one)."""
    try:
        document = json.loads(text)
    except ValueError:
        return []
    items = document.get("nftables", []) if isinstance(document, dict) else []
    found = []
    for item in items if isinstance(items, list) else []:
        rule = item.get("rule") if isinstance(item, dict) else None
        if isinstance(rule, dict) and type(rule.get("handle")) is int:
            comment = rule.get("comment")
            found.append((rule["handle"], comment if isinstance(comment, str) else None))
    return found


def comments_in_nft(text, pattern=ruleset.COMMENT_RE):
    """``{comment: handle}`` of our rules in ``nft -j list chain`` output, in chain order."""
    return {comment: handle for handle, comment in chain_rules(text) if ruleset.is_ours(comment, pattern)}


def chain(model):
    """``(family, table, chain)`` of the chain the rules go in."""
    family, table = model["firewall"]["nft_table"].split()
    return family, table, model["firewall"]["nft_chain"]


def listing(model):
    """``nft -j list chain`` of the chain, or None without the chain."""
    done = command.run(["nft", "-j", "list", "chain", *chain(model)], check=False)
    return done.stdout if done.returncode == 0 else None


def current(model, kind):
    """``{comment: handle}`` of the rules of ``kind`` in the chain, in chain order."""
    return comments_in_nft(listing(model) or "", kind.comments)


def chain_creation(model):
    """The batch lines creating the table and the chain, if the chain does not exist (the user's own is left as it is)."""
    if listing(model) is not None:
        return []
    family, table, name = chain(model)
    return [f"add table {family} {table}", f"add chain {family} {table} {name} {{ type filter hook input priority filter; }}"]


def run_batch(lines):
    """Apply ``lines`` as one ``nft -f -`` batch: one transaction, all of it or nothing."""
    if lines:
        command.run(["nft", "-f", "-"], check=True, stdin_text="\n".join(lines) + "\n")


def apply(model, kind, current, to_add, to_delete):
    """
    Make the change as one batch. Add before deleting: only a rule put back in place (the
    same comment) is deleted first, then the accept rules are inserted at the top, the
    record and drop rules go right after our last rule as read before the batch (each at
    that position, so in reverse order) or, without one, at the top below the new accept
    rules; last, the rules no longer wanted go.
    """
    if not to_add and not to_delete:
        return
    family, table, name = chain(model)
    where = f"{family} {table} {name}"
    replaced = [comment for comment in to_delete if comment in to_add]
    anchor = next(reversed([handle for comment, handle in current.items() if comment not in replaced]), None)
    placed = f"add rule {where} position {anchor}" if anchor is not None else f"insert rule {where}"
    others = [(comment, rule) for comment, rule in to_add.items() if rule.action != "accept"]
    records = [rule for _, rule in others if rule.action == "record"]
    run_batch([
        *chain_creation(model),
        *(f"add set {family} {table} {ROGUE_SETS[rule.family]} {nft_rogue_set(rule.family)}" for rule in records),
        *(f"delete rule {where} handle {to_delete[comment]}" for comment in replaced),
        *(f"{placed} {kind.nft_rule(rule, comment)}" for comment, rule in reversed(others)),
        *(f"insert rule {where} {kind.nft_rule(rule, comment)}" for comment, rule in to_add.items() if rule.action == "accept"),
        *(f"delete rule {where} handle {handle}" for comment, handle in to_delete.items() if comment not in replaced),
    ])
