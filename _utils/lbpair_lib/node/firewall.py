"""
The firewall rules that let the nodes of an lbpair pair see each other's VRRP
adverts (IP protocol 112) and nobody else's.

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

Backends (pillar ``lbpair:firewall:backend``):

- ``iptables``: rules at the top of the ``INPUT`` chains of ``iptables`` and
  ``ip6tables`` (VRRP over IPv6 from nodes without ``address6`` is dropped). The record
  rules match the VRID with ``-m u32`` and record senders with ``-m recent``, in
  ``/proc/net/xt_recent/lbpair_rogue_vrrp`` (the kernel keeps the last 100 until the rule goes).
- ``nftables``: rules at the top of the chain named by ``lbpair:firewall:nft_table``
  and ``nft_chain`` (default ``inet filter`` / ``input``, Debian's own), created
  if it does not exist. A separate table would not help: a drop in the user's
  chain still drops what another table accepted. The record rules match the VRID
  with ``@th,8,8`` and add senders to the sets ``lbpair_rogue_v4`` / ``lbpair_rogue_v6``
  of that table, for an hour.
  An ``ip`` (``ip6``) table sees IPv4 (IPv6) only; ``inet`` covers both.

Each rule carries a comment, ``lbpair-vrrp <peer> to <destination>``,
``lbpair-vrrp record <ipv4|ipv6> vrid <vrid,...> on <interface>`` or
``lbpair-vrrp drop <ipv4|ipv6> on <interface>``, which is how lbpair finds its own
rules again; rules for nodes that left the pair (or of VRIDs it no longer uses) are
removed, and record and drop rules out of order (one before an accept rule would
drop the peer; a drop rule before a record rule would leave nothing to record) are
put back after the accept rules, in order. Salt's own ``nftables`` module is not used: it renders a ``vrrp``
protocol rule as a bare ``accept``.
"""

import collections
import ipaddress
import itertools
import json
import re
import shlex

from lbpair_lib.core import command

VRRP_PROTOCOL = "112"
VRRP_MULTICAST = "224.0.0.18"
#: where each family's VRRP goes (multicast), and the node's address it is sent from
MULTICAST = {"ipv4": VRRP_MULTICAST, "ipv6": "ff02::12"}
ADDRESS_FIELD = {"ipv4": "address", "ipv6": "address6"}
COMMENT_PREFIX = "lbpair-vrrp"
ACCEPT_COMMENT = r"lbpair-vrrp ([0-9a-f.:]+) to ([0-9a-f.:]+)"
RECORD_COMMENT = r"lbpair-vrrp record (ipv[46]) vrid ([0-9,]+) on ([A-Za-z0-9_.-]+)"
DROP_COMMENT = r"lbpair-vrrp drop (ipv[46]) on ([A-Za-z0-9_.-]+)"
COMMENT_RE = re.compile(f'"((?:{ACCEPT_COMMENT})|(?:{RECORD_COMMENT})|(?:{DROP_COMMENT}))"')
NFT_HANDLE_RE = re.compile(r"# handle (\d+)\s*$")
IPTABLES = {"ipv4": "iptables", "ipv6": "ip6tables"}
NFT_FAMILIES = {"ip": ("ipv4",), "ip6": ("ipv6",), "inet": ("ipv4", "ipv6")}
ROGUE_RECENT_LIST = "lbpair_rogue_vrrp"
ROGUE_RECENT = f"/proc/net/xt_recent/{ROGUE_RECENT_LIST}"
ROGUE_SETS = {"ipv4": "lbpair_rogue_v4", "ipv6": "lbpair_rogue_v6"}
ROGUE_SET_TYPES = {"ipv4": "ipv4_addr", "ipv6": "ipv6_addr"}
ROGUE_TIMEOUT = "1h"
SOURCE_MATCH = {"ipv4": "ip saddr", "ipv6": "ip6 saddr"}
#: the packet's own protocol (not ``meta nfproto``: nft takes that in an ``inet`` table only)
PACKET_PROTOCOL = {"ipv4": "ip", "ipv6": "ip6"}
# Not ``meta l4proto``: nft 1.0.6 cannot list that rule followed by a set of ``@th`` values (it aborts).
VRRP_MATCH = {"ipv4": "ip protocol " + VRRP_PROTOCOL, "ipv6": "ip6 nexthdr " + VRRP_PROTOCOL}
#: the VRID (VRRP header byte 1) for ``-m u32``: after the IPv4 header (its length from IHL), or the fixed IPv6 one
VRID_U32 = {"ipv4": "0>>22&0x3C@0>>16&0xFF", "ipv6": "40>>16&0xFF"}
DESTINATION_MATCH = {"ipv4": "ip daddr", "ipv6": "ip6 daddr"}
ACCEPT_MATCH = {
    "ipv4": "ip saddr {} ip daddr {} ip protocol " + VRRP_PROTOCOL,
    "ipv6": "ip6 saddr {} ip6 daddr {} meta l4proto " + VRRP_PROTOCOL,
}

#: one rule: ``action`` accept (``source`` to ``destination``), record (adverts of ``vrids`` on ``interface``)
#: or drop (on ``interface``), of address ``family``
Rule = collections.namedtuple("Rule", "action family source destination interface vrids", defaults=(None,))


def drop_families(model):
    """The address families whose VRRP the backend filters: ``("ipv4", "ipv6")`` or one of them."""
    if model["firewall"]["backend"] == "iptables":
        return tuple(IPTABLES)
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


def iptables_spec(rule, comment):
    """The iptables arguments of one rule, after ``-I INPUT <position>``."""
    commented = ["-m", "comment", "--comment", comment]
    if rule.action == "accept":
        return ["-s", rule.source, "-d", rule.destination, "-p", VRRP_PROTOCOL, *commented, "-j", "ACCEPT"]
    if rule.action == "drop":
        return ["-i", rule.interface, "-p", VRRP_PROTOCOL, *commented, "-j", "DROP"]
    vrid = ["-m", "u32", "--u32", f"{VRID_U32[rule.family]}={rule.vrids}"]
    record = ["-m", "recent", "--name", ROGUE_RECENT_LIST, "--rsource", "--set"]
    return ["-i", rule.interface, "-p", VRRP_PROTOCOL, *vrid, *commented, *record, "-j", "DROP"]


def nft_rule(rule, comment):
    """The nft rule text for one rule."""
    if rule.action == "accept":
        return f'{ACCEPT_MATCH[rule.family].format(rule.source, rule.destination)} accept comment "{comment}"'
    arriving = f'iifname "{rule.interface}"'
    if rule.action == "drop":  # meta l4proto: VRRP behind IPv6 extension headers too
        return f'{arriving} meta protocol {PACKET_PROTOCOL[rule.family]} meta l4proto {VRRP_PROTOCOL} drop comment "{comment}"'
    vrid = f"@th,8,8 {{ {rule.vrids.replace(',', ', ')} }}"
    record = f"add @{ROGUE_SETS[rule.family]} {{ {SOURCE_MATCH[rule.family]} }}"
    return f'{arriving} {VRRP_MATCH[rule.family]} {vrid} {record} drop comment "{comment}"'


def nft_rogue_set(family):
    """The nft definition of the set a record rule of ``family`` records senders in."""
    return f"{{ type {ROGUE_SET_TYPES[family]}; flags dynamic,timeout; timeout {ROGUE_TIMEOUT}; }}"


def iptables_rules(listing):
    """The rules of ``iptables -S INPUT`` output in chain order, each as its arguments after ``-A`` (to give to ``-D``)."""
    return [shlex.split(line)[1:] for line in listing.splitlines() if line.startswith("-A ")]


def comments_in_iptables(listing, pattern=COMMENT_RE):
    """``{comment: position}`` of our rules in ``iptables -S INPUT`` output, in chain order (1 is the top)."""
    rules = [line for line in listing.splitlines() if line.startswith("-A ")]
    return {match.group(1): position for position, line in enumerate(rules, 1) if (match := pattern.search(line))}


def comments_in_nft(listing, pattern=COMMENT_RE):
    """``{comment: handle}`` of our rules in ``nft -a list chain`` output, in chain order."""
    found = {}
    for line in listing.splitlines():
        comment, handle = pattern.search(line), NFT_HANDLE_RE.search(line)
        if comment and handle:
            found[comment.group(1)] = handle.group(1)
    return found


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


def _addresses(candidates):
    """The plain IP addresses among ``candidates``, sorted (IPv4 first), each once."""
    found = set()
    for candidate in candidates:
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if getattr(address, "scope_id", None) is None:  # ``fe80::1%<any text>`` parses too
            found.add(address)
    return [str(address) for address in sorted(found, key=lambda address: (address.version, address))]


def senders_in_recent(text):
    """The source addresses listed in an ``xt_recent`` table (``src=192.0.2.66 ttl: 64 ...`` lines)."""
    return _addresses(line.split()[0][len("src=") :] for line in text.splitlines() if line.startswith("src="))


def senders_in_nft_set(text):
    """The addresses in ``nft -j list set`` output (elements with a timeout are ``{"elem": {"val": ...}}``)."""
    try:
        document = json.loads(text)
    except ValueError:
        return []
    values = []
    for item in document.get("nftables", []) if isinstance(document, dict) else []:
        elements = item.get("set", {}).get("elem", []) if isinstance(item, dict) else []
        for element in elements if isinstance(elements, list) else []:
            value = element.get("elem", {}).get("val") if isinstance(element, dict) else element
            values.append(value if isinstance(value, str) else "")
    return _addresses(values)


# --- backends -----------------------------------------------------------------


def _run(cmd, check=True):
    return command.run(cmd, check=check)


def _iptables_current(model, kind):
    """``{comment: (binary, position, arguments)}``: IPv4 rules first, each chain in order."""
    found = {}
    for binary in IPTABLES.values():
        listing = _run([binary, "-S", "INPUT"]).stdout
        rules = iptables_rules(listing)
        ours = comments_in_iptables(listing, kind.comments)
        found.update({comment: (binary, position, rules[position - 1]) for comment, position in ours.items()})
    return found


def _iptables_add(model, rule, comment, kind):
    binary = IPTABLES[rule.family]
    position = 1
    if rule.action != "accept":  # right after our last rule: the accept rules are above it
        ours = [where for chain, where, _ in _iptables_current(model, kind).values() if chain == binary]
        position = max(ours, default=0) + 1
    _run([binary, "-I", "INPUT", str(position), *kind.iptables_spec(rule, comment)])


def _iptables_delete(model, comment, handle):
    # As listed: not by its position (another tool may have moved it meanwhile), nor as
    # this version writes it (an earlier one wrote the drop rule otherwise). Less the
    # recent match's --mask (lbpair never sets one): iptables-nft 1.8.9 lists the default
    # one, then finds no rule given it back.
    binary, _, rule = handle
    _run([binary, "-D", *_without_option(rule, "--mask")])


def _without_option(arguments, option):
    """``arguments`` less ``option`` and its value."""
    if option not in arguments:
        return arguments
    at = arguments.index(option)
    return arguments[:at] + arguments[at + 2 :]


def _nft_chain(model):
    family, table = model["firewall"]["nft_table"].split()
    return family, table, model["firewall"]["nft_chain"]


def _nft_current(model, kind):
    family, table, chain = _nft_chain(model)
    listing = _run(["nft", "-a", "list", "chain", family, table, chain], check=False)
    if listing.returncode != 0:
        return {}
    return comments_in_nft(listing.stdout, kind.comments)


def _nft_ensure_chain(model):
    family, table, chain = _nft_chain(model)
    if _run(["nft", "list", "chain", family, table, chain], check=False).returncode == 0:
        return
    _run(["nft", "add", "table", family, table])
    _run(["nft", f"add chain {family} {table} {chain} {{ type filter hook input priority filter; }}"])


def _nft_add(model, rule, comment, kind):
    _nft_ensure_chain(model)
    family, table, chain = _nft_chain(model)
    if rule.action == "accept":
        _run(["nft", f"insert rule {family} {table} {chain} {kind.nft_rule(rule, comment)}"])
        return
    if rule.action == "record":
        _run(["nft", f"add set {family} {table} {ROGUE_SETS[rule.family]} {nft_rogue_set(rule.family)}"])
    ours = list(_nft_current(model, kind).values())  # after our last rule: the accept rules are above it
    where = f"add rule {family} {table} {chain} position {ours[-1]}" if ours else f"insert rule {family} {table} {chain}"
    _run(["nft", f"{where} {kind.nft_rule(rule, comment)}"])


def _nft_delete(model, comment, handle):
    family, table, chain = _nft_chain(model)
    _run(["nft", "delete", "rule", family, table, chain, "handle", handle])


def _iptables_senders(model):
    try:
        with open(ROGUE_RECENT, encoding="ascii", errors="replace") as handle:
            return senders_in_recent(handle.read())
    except FileNotFoundError:  # no record rule (yet)
        return []


def _nft_senders(model):
    family, table, _ = _nft_chain(model)
    senders = []
    for address_family in drop_families(model):
        listing = _run(["nft", "-j", "list", "set", family, table, ROGUE_SETS[address_family]], check=False)
        if listing.returncode == 0:
            senders.extend(senders_in_nft_set(listing.stdout))
    return senders


#: what one set of rules is: how its comments are found, which rules are wanted, their iptables and nft texts
Kind = collections.namedtuple("Kind", "comments wanted iptables_spec nft_rule")
VRRP = Kind(COMMENT_RE, wanted_rules, iptables_spec, nft_rule)
Backend = collections.namedtuple("Backend", "current add delete senders")
BACKENDS = {
    "iptables": Backend(_iptables_current, _iptables_add, _iptables_delete, _iptables_senders),
    "nftables": Backend(_nft_current, _nft_add, _nft_delete, _nft_senders),
}


def _backend(model):
    return BACKENDS[model["firewall"]["backend"]]


def _plan(model, kind):
    current = _backend(model).current(model, kind)
    wanted = kind.wanted(model)
    out_of_place = misplaced(current, wanted)
    to_add = {comment: rule for comment, rule in wanted.items() if comment not in current or comment in out_of_place}
    to_delete = {comment: handle for comment, handle in current.items() if comment not in wanted or comment in out_of_place}
    return to_add, to_delete


def rules(model, kind=None):
    """The VRRP rules (or those of ``kind``) this node needs, each with whether it is in place: ``{comment: bool}``."""
    kind = kind or VRRP
    to_add, _ = _plan(model, kind)
    return {comment: comment not in to_add for comment in kind.wanted(model)}


def allow(model, test=False, kind=None):
    """
    Add the missing VRRP rules (accept rules first, then the record and drop rules) and
    remove lbpair's rules for nodes no longer in the pair.
    Returns ``{"added": [...], "removed": [...]}`` (what would change, with ``test``).
    """
    backend, kind = _backend(model), kind or VRRP
    to_add, to_delete = _plan(model, kind)
    if not test:
        _apply_plan(model, backend, kind, to_add, to_delete)
    return {"added": sorted(to_add), "removed": sorted(to_delete)}


def _apply_plan(model, backend, kind, to_add, to_delete):
    """
    Add before deleting, so that a changed rule (a new port, a new peer address) never
    leaves a moment without one: only a rule put back in place (the same comment) goes
    first, as iptables deletes the first rule matching its text.
    """
    replaced = [comment for comment in to_delete if comment in to_add]
    for comment in replaced:
        backend.delete(model, comment, to_delete[comment])
    for comment, rule in to_add.items():
        backend.add(model, rule, comment, kind)
    for comment, handle in to_delete.items():
        if comment not in replaced:
            backend.delete(model, comment, handle)


def rogue_senders(model):
    """
    The addresses whose adverts with one of the pair's VRIDs the record rules dropped
    (not the pair's nodes), sorted:
    with nftables those of the last hour, with iptables the last 100 since the rule was made.
    """
    return _addresses(_backend(model).senders(model))


# --- holding new connections during a planned hand-over ------------------------

HOLD_COMMENT = "lbpair-handover"


def hold_new_connections(model, vips):
    """
    Drop (not refuse) new TCP connections to ``vips`` on this node: a client sends
    its SYN again a second later, by then to the node that took the VIPs over.
    """
    if model["firewall"]["backend"] == "iptables":
        for family, addresses in _by_family(model, vips).items():
            _run([IPTABLES[family], "-I", "INPUT", "1", *_hold_spec(addresses)])
        return
    _nft_ensure_chain(model)
    family, table, chain = _nft_chain(model)
    for address_family, addresses in _by_family(model, vips).items():
        match = f"{DESTINATION_MATCH[address_family]} {{ {', '.join(addresses)} }} tcp flags & (syn | ack) == syn"
        _run(["nft", f'insert rule {family} {table} {chain} {match} drop comment "{HOLD_COMMENT}"'])


def release_new_connections(model):
    """
    Remove every hold rule in the chains the backend uses, found by its comment:
    what :func:`hold_new_connections` added, and any hold a crash left behind, for
    VIPs since changed too. Returns how many rules were removed.
    """
    if model["firewall"]["backend"] == "iptables":
        holds = [
            [binary, "-D", *rule] for binary in IPTABLES.values() for rule in holds_in_iptables(_run([binary, "-S", "INPUT"]).stdout)
        ]
    else:
        family, table, chain = _nft_chain(model)
        listing = _run(["nft", "-a", "list", "chain", family, table, chain], check=False).stdout
        holds = [["nft", "delete", "rule", family, table, chain, "handle", handle] for handle in holds_in_nft(listing)]
    for deletion in holds:
        _run(deletion)
    return len(holds)


def holds_in_iptables(listing):
    """The hold rules in ``iptables -S INPUT`` output, each as its arguments after ``-A`` (to give to ``-D``)."""
    return [rule for rule in iptables_rules(listing) if _comment_of(rule) == HOLD_COMMENT]


def _comment_of(arguments):
    """The ``--comment`` of one iptables rule's arguments, or None."""
    return next((value for option, value in itertools.pairwise(arguments) if option == "--comment"), None)


def holds_in_nft(listing):
    """The handles of the hold rules in ``nft -a list chain`` output."""
    return [
        handle.group(1)
        for line in listing.splitlines()
        if f'comment "{HOLD_COMMENT}"' in line and (handle := NFT_HANDLE_RE.search(line))
    ]


def _by_family(model, vips):
    """``{family: [vip, ...]}`` of the families the backend filters (an ``ip`` nft table sees no IPv6)."""
    families = {}
    for vip in vips:
        families.setdefault("ipv6" if ":" in vip else "ipv4", []).append(vip)
    return {family: addresses for family, addresses in families.items() if family in drop_families(model)}


def _hold_spec(vips):
    return ["-p", "tcp", "--syn", "-d", ",".join(vips), "-m", "comment", "--comment", HOLD_COMMENT, "-j", "DROP"]
