"""
The ``iptables`` backend: rules at the top of the ``INPUT`` chains of ``iptables`` and
``ip6tables`` (VRRP over IPv6 from nodes without ``address6`` is dropped). The record
rules match the VRID with ``-m u32`` and record senders with ``-m recent``, in
``/proc/net/xt_recent/lbpair_rogue_vrrp`` (the kernel keeps the last 100 until the rule goes).
A rule is found again by its comment in ``iptables -S INPUT``, and deleted as listed.
"""

import itertools
import shlex

from saltext.lbpair.core import command
from saltext.lbpair.node.firewall import ruleset

IPTABLES = {"ipv4": "iptables", "ipv6": "ip6tables"}
#: the VRID (VRRP header byte 1) for ``-m u32``: after the IPv4 header (its length from IHL), or the fixed IPv6 one
VRID_U32 = {"ipv4": "0>>22&0x3C@0>>16&0xFF", "ipv6": "40>>16&0xFF"}
ROGUE_RECENT_LIST = "lbpair_rogue_vrrp"


def iptables_spec(rule, comment):
    """The iptables arguments of one VRRP rule, after ``-I INPUT <position>``."""
    commented = ["-m", "comment", "--comment", comment]
    if rule.action == "accept":
        return ["-s", rule.source, "-d", rule.destination, "-p", ruleset.VRRP_PROTOCOL, *commented, "-j", "ACCEPT"]
    if rule.action == "drop":
        return ["-i", rule.interface, "-p", ruleset.VRRP_PROTOCOL, *commented, "-j", "DROP"]
    vrid = ["-m", "u32", "--u32", f"{VRID_U32[rule.family]}={rule.vrids}"]
    record = ["-m", "recent", "--name", ROGUE_RECENT_LIST, "--rsource", "--set"]
    return ["-i", rule.interface, "-p", ruleset.VRRP_PROTOCOL, *vrid, *commented, *record, "-j", "DROP"]


def iptables_rules(listing):
    """The rules of ``iptables -S INPUT`` output in chain order, each as its arguments after ``-A`` (to give to ``-D``)."""
    return [shlex.split(line)[1:] for line in listing.splitlines() if line.startswith("-A ")]


def comments_in_iptables(listing, pattern=ruleset.COMMENT_RE):
    """``{comment: position}`` of our rules in ``iptables -S INPUT`` output, in chain order (1 is the top)."""
    rules = [line for line in listing.splitlines() if line.startswith("-A ")]
    return {match.group(1): position for position, line in enumerate(rules, 1) if (match := pattern.search(line))}


def comment_of(arguments):
    """The ``--comment`` of one iptables rule's arguments, or None."""
    return next((value for option, value in itertools.pairwise(arguments) if option == "--comment"), None)


def listing(binary):
    """``<binary> -S INPUT``: the INPUT chain as iptables writes its rules."""
    return command.run([binary, "-S", "INPUT"], check=True).stdout


def current(model, kind):
    """``{comment: (binary, position, arguments)}``: IPv4 rules first, each chain in order."""
    found = {}
    for binary in IPTABLES.values():
        text = listing(binary)
        rules = iptables_rules(text)
        ours = comments_in_iptables(text, kind.comments)
        found.update({comment: (binary, position, rules[position - 1]) for comment, position in ours.items()})
    return found


def add(model, rule, comment, kind):
    binary = IPTABLES[rule.family]
    position = 1
    if rule.action != "accept":  # right after our last rule: the accept rules are above it
        ours = [where for chain, where, _ in current(model, kind).values() if chain == binary]
        position = max(ours, default=0) + 1
    command.run([binary, "-I", "INPUT", str(position), *kind.iptables_spec(rule, comment)], check=True)


def delete(model, comment, handle):
    # As listed: not by its position (another tool may have moved it meanwhile), nor as
    # this version writes it (an earlier one wrote the drop rule otherwise). Less the
    # recent match's --mask (lbpair never sets one): iptables-nft 1.8.9 lists the default
    # one, then finds no rule given it back.
    binary, _, rule = handle
    command.run([binary, "-D", *_without_option(rule, "--mask")], check=True)


def _without_option(arguments, option):
    """``arguments`` less ``option`` and its value."""
    if option not in arguments:
        return arguments
    at = arguments.index(option)
    return arguments[:at] + arguments[at + 2 :]


def apply(model, kind, current, to_add, to_delete):
    """
    Add before deleting, so that a changed rule (a new port, a new peer address) never
    leaves a moment without one: only a rule put back in place (the same comment) goes
    first, as iptables deletes the first rule matching its text. One command a rule:
    iptables has no transaction spanning both families.
    """
    replaced = [comment for comment in to_delete if comment in to_add]
    for comment in replaced:
        delete(model, comment, to_delete[comment])
    for comment, rule in to_add.items():
        add(model, rule, comment, kind)
    for comment, handle in to_delete.items():
        if comment not in replaced:
            delete(model, comment, handle)
