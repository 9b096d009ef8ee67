"""
The firewall rule that lets the nodes of an lbpair pair see each other's VRRP
adverts (IP protocol 112), accepted only from the other nodes' addresses.

Backends (pillar ``lbpair:firewall:backend``):

- ``iptables``: rules at the top of the ``INPUT`` chain.
- ``nftables``: rules at the top of the chain named by ``lbpair:firewall:nft_table``
  and ``nft_chain`` (default ``inet filter`` / ``input``, Debian's own), created
  if it does not exist. A separate table would not help: a drop in the user's
  chain still drops what another table accepted.

Each rule carries the comment ``lbpair-vrrp <peer> to <destination>``, which is
how lbpair finds its own rules again; rules for nodes that left the pair are
removed. Salt's own ``nftables`` module is not used: it renders a ``vrrp``
protocol rule as a bare ``accept``.
"""

import re

from lbpair_lib import command

VRRP_PROTOCOL = "112"
VRRP_MULTICAST = "224.0.0.18"
COMMENT_PREFIX = "lbpair-vrrp"
COMMENT_RE = re.compile(r'"?(lbpair-vrrp [0-9.]+ to [0-9.]+)"?')
NFT_HANDLE_RE = re.compile(r"# handle (\d+)\s*$")


def wanted_rules(model):
    """``{comment: (peer, destination)}`` for every VRRP rule this node needs."""
    destination = model["node"]["address"] if model["vrrp"]["unicast"] else VRRP_MULTICAST
    return {
        f"{COMMENT_PREFIX} {peer['address']} to {destination}": (peer["address"], destination)
        for peer in model["peers"].values()
    }


def iptables_spec(chain, peer, destination, comment):
    """The iptables arguments of one rule, after ``-A``/``-I``/``-D``/``-C``."""
    return [
        chain, "-s", peer, "-d", destination, "-p", VRRP_PROTOCOL,
        "-m", "comment", "--comment", comment, "-j", "ACCEPT",
    ]


def nft_rule(peer, destination, comment):
    """The nft rule text for one VRRP rule."""
    return f'ip saddr {peer} ip daddr {destination} ip protocol {VRRP_PROTOCOL} accept comment "{comment}"'


def comments_in_iptables(listing):
    """Our comments in ``iptables -S INPUT`` output."""
    return {match.group(1) for line in listing.splitlines() if (match := COMMENT_RE.search(line))}


def comments_in_nft(listing):
    """``{comment: handle}`` of our rules in ``nft -a list chain`` output."""
    found = {}
    for line in listing.splitlines():
        comment, handle = COMMENT_RE.search(line), NFT_HANDLE_RE.search(line)
        if comment and handle:
            found[comment.group(1)] = handle.group(1)
    return found

# --- backends -----------------------------------------------------------------


def _run(cmd, check=True):
    return command.run(cmd, check=check)


def _iptables_current(model):
    return dict.fromkeys(comments_in_iptables(_run(["iptables", "-S", "INPUT"]).stdout))


def _iptables_add(model, peer, destination, comment):
    _run(["iptables", "-I", *iptables_spec("INPUT", peer, destination, comment)])


def _iptables_delete(model, comment, handle):
    peer, _, destination = comment[len(COMMENT_PREFIX) + 1 :].partition(" to ")
    _run(["iptables", "-D", *iptables_spec("INPUT", peer, destination, comment)])


def _nft_chain(model):
    family, table = model["firewall"]["nft_table"].split()
    return family, table, model["firewall"]["nft_chain"]


def _nft_current(model):
    family, table, chain = _nft_chain(model)
    listing = _run(["nft", "-a", "list", "chain", family, table, chain], check=False)
    if listing.returncode != 0:
        return {}
    return comments_in_nft(listing.stdout)


def _nft_ensure_chain(model):
    family, table, chain = _nft_chain(model)
    if _run(["nft", "list", "chain", family, table, chain], check=False).returncode == 0:
        return
    _run(["nft", "add", "table", family, table])
    _run(["nft", f"add chain {family} {table} {chain} {{ type filter hook input priority filter; }}"])


def _nft_add(model, peer, destination, comment):
    _nft_ensure_chain(model)
    family, table, chain = _nft_chain(model)
    _run(["nft", f"insert rule {family} {table} {chain} {nft_rule(peer, destination, comment)}"])


def _nft_delete(model, comment, handle):
    family, table, chain = _nft_chain(model)
    _run(["nft", "delete", "rule", family, table, chain, "handle", handle])


BACKENDS = {
    "iptables": (_iptables_current, _iptables_add, _iptables_delete),
    "nftables": (_nft_current, _nft_add, _nft_delete),
}


def _plan(model):
    current_rules, _, _ = BACKENDS[model["firewall"]["backend"]]
    current = current_rules(model)
    wanted = wanted_rules(model)
    to_add = {comment: rule for comment, rule in wanted.items() if comment not in current}
    to_delete = {comment: handle for comment, handle in current.items() if comment not in wanted}
    return to_add, to_delete


def rules(model):
    """The VRRP rules this node needs, each with whether it is in place: ``{comment: bool}``."""
    to_add, _ = _plan(model)
    return {comment: comment not in to_add for comment in wanted_rules(model)}


def allow(model, test=False):
    """
    Add the missing VRRP rules and remove lbpair's rules for nodes no longer in the pair.
    Returns ``{"added": [...], "removed": [...]}`` (what would change, with ``test``).
    """
    _, add_rule, delete_rule = BACKENDS[model["firewall"]["backend"]]
    to_add, to_delete = _plan(model)
    if not test:
        for comment, handle in to_delete.items():
            delete_rule(model, comment, handle)
        for comment, (peer, destination) in to_add.items():
            add_rule(model, peer, destination, comment)
    return {"added": sorted(to_add), "removed": sorted(to_delete)}
