"""
The ``nftables`` backend: rules at the top of the chain named by ``lbpair:firewall:nft_table``
and ``nft_chain`` (default ``inet filter`` / ``input``, Debian's own), created
if it does not exist. A separate table would not help: a drop in the user's
chain still drops what another table accepted. The record rules match the VRID
with ``@th,8,8`` and add senders to the sets ``lbpair_rogue_v4`` / ``lbpair_rogue_v6``
of that table, for an hour.
An ``ip`` (``ip6``) table sees IPv4 (IPv6) only; ``inet`` covers both.
Salt's own ``nftables`` module is not used: it renders a ``vrrp`` protocol rule as a bare ``accept``.
"""

import re

from lbpair_lib.core import command
from lbpair_lib.node.firewall import ruleset

NFT_HANDLE_RE = re.compile(r"# handle (\d+)\s*$")
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


def comments_in_nft(listing, pattern=ruleset.COMMENT_RE):
    """``{comment: handle}`` of our rules in ``nft -a list chain`` output, in chain order."""
    found = {}
    for line in listing.splitlines():
        comment, handle = pattern.search(line), NFT_HANDLE_RE.search(line)
        if comment and handle:
            found[comment.group(1)] = handle.group(1)
    return found


def chain(model):
    """``(family, table, chain)`` of the chain the rules go in."""
    family, table = model["firewall"]["nft_table"].split()
    return family, table, model["firewall"]["nft_chain"]


def listing(model):
    """``nft -a list chain`` of the chain: its rules with their handles ("" without the chain)."""
    return command.run(["nft", "-a", "list", "chain", *chain(model)], check=False).stdout


def current(model, kind):
    return comments_in_nft(listing(model), kind.comments)


def ensure_chain(model):
    family, table, name = chain(model)
    if command.run(["nft", "list", "chain", family, table, name], check=False).returncode == 0:
        return
    command.run(["nft", "add", "table", family, table], check=True)
    command.run(["nft", f"add chain {family} {table} {name} {{ type filter hook input priority filter; }}"], check=True)


def add(model, rule, comment, kind):
    ensure_chain(model)
    family, table, name = chain(model)
    if rule.action == "accept":
        command.run(["nft", f"insert rule {family} {table} {name} {kind.nft_rule(rule, comment)}"], check=True)
        return
    if rule.action == "record":
        command.run(["nft", f"add set {family} {table} {ROGUE_SETS[rule.family]} {nft_rogue_set(rule.family)}"], check=True)
    ours = list(current(model, kind).values())  # after our last rule: the accept rules are above it
    where = f"add rule {family} {table} {name} position {ours[-1]}" if ours else f"insert rule {family} {table} {name}"
    command.run(["nft", f"{where} {kind.nft_rule(rule, comment)}"], check=True)


def delete(model, comment, handle):
    command.run(["nft", "delete", "rule", *chain(model), "handle", handle], check=True)
