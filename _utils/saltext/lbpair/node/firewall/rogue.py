"""
The record of rogue VRRP senders: the addresses whose adverts with one of the pair's VRIDs
the record rules dropped. iptables keeps them in ``/proc/net/xt_recent/lbpair_rogue_vrrp``
(the last 100, until the rule goes), nftables in the sets ``lbpair_rogue_v4`` / ``lbpair_rogue_v6``
(for an hour). Only plain addresses come out: the record is the kernel's, but its text is read as hostile.
"""

import ipaddress
import json

from saltext.lbpair.core import command
from saltext.lbpair.node.firewall import iptables, nftables, ruleset

ROGUE_RECENT = f"/proc/net/xt_recent/{iptables.ROGUE_RECENT_LIST}"


def addresses(candidates):
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
    return addresses(line.split()[0][len("src=") :] for line in text.splitlines() if line.startswith("src="))


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
    return addresses(values)


def _iptables_senders(model):
    try:
        with open(ROGUE_RECENT, encoding="ascii", errors="replace") as handle:
            return senders_in_recent(handle.read())
    except FileNotFoundError:  # no record rule (yet)
        return []


def _nft_senders(model):
    family, table, _ = nftables.chain(model)
    senders = []
    for address_family in ruleset.drop_families(model):
        listing = command.run(["nft", "-j", "list", "set", family, table, nftables.ROGUE_SETS[address_family]], check=False)
        if listing.returncode == 0:
            senders.extend(senders_in_nft_set(listing.stdout))
    return senders


SENDERS = {"iptables": _iptables_senders, "nftables": _nft_senders}


def rogue_senders(model):
    """
    The addresses whose adverts with one of the pair's VRIDs the record rules dropped
    (not the pair's nodes), sorted:
    with nftables those of the last hour, with iptables the last 100 since the rule was made.
    """
    return addresses(SENDERS[model["firewall"]["backend"]](model))
