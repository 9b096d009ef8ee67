"""
``lbpair:haproxy:prometheus``: HAProxy's own Prometheus exporter, the pair owner's global setting.

Absent, there is no exporter. Present, each node renders a ``frontend lbpair_prometheus`` bound to
its exporter address and port that serves ``/metrics`` (HAProxy's ``prometheus-exporter``
service) and denies every other path, and the firewall accepts TCP to that address and port only
from the ``allow`` networks (:mod:`saltext.lbpair.node.firewall.exporter`). No service entry can
turn it on: ``use-service`` is refused in a service's options, and the frontend's name is lbpair's.

.. code-block:: yaml

    lbpair:
      haproxy:
        prometheus:
          address: 192.0.2.11         # one address, or {lb1: 192.0.2.11, lb2: 192.0.2.12};
                                      # default: each node's own lbpair:nodes:<node>:address
          port: 8404                  # default 8404
          allow: [198.51.100.0/28]    # the networks Prometheus scrapes from (required)
          on_vip: false               # true: the address may be a service's VIP (the MASTER answers)
          wildcard: false             # true: the address may be 0.0.0.0 or :: (every address of the node)

Each node's address is one it can hold: the node's own (``address``/``address6``), or one that is
not global (a private or management network: RFC 1918, RFC 4193, shared address space, the
documentation ranges); never another node's, never a VIP or a wildcard unless ``on_vip`` or
``wildcard`` says so, never IPv4-mapped IPv6. Its port is no other listener's on that address: a
service's (plain or TLS), the peers port on the node's address, the probe's on 127.0.0.1.
"""

import ipaddress

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import schema, services

FRONTEND = "lbpair_prometheus"
DEFAULT_PORT = 8404
KEYS = ("address", "port", "allow", "on_vip", "wildcard")
#: the most ``allow`` networks: each is a firewall rule per node
MAX_ALLOW = 64
METRICS_PATH = "/metrics"


def normalize(value, path, nodes):
    """
    The exporter of ``path`` (``lbpair:haproxy:prometheus``) for ``nodes`` (normalised), or None when
    absent: ``{"addresses": {node: address}, "keys": {node: its pillar key}, "port", "allow": [network, ...],
    "on_vip", "wildcard"}``.
    Each node's address is checked here on its own; against the services, the peers port, the probe
    and the firewall by :func:`check`.
    """
    if value is None:
        return None
    schema.mapping(value, path, allowed=KEYS, required=("allow",))
    exporter = {
        "on_vip": schema.boolean(value.get("on_vip", False), f"{path}:on_vip"),
        "wildcard": schema.boolean(value.get("wildcard", False), f"{path}:wildcard"),
        "port": schema.port(value.get("port", DEFAULT_PORT), f"{path}:port"),
    }
    given = _given_addresses(value, path, nodes)
    exporter["addresses"] = {node: _address(text, key, exporter["wildcard"]) for node, (text, key) in given.items()}
    exporter["keys"] = {node: key for node, (_text, key) in given.items()}
    exporter["allow"] = _allow(value["allow"], f"{path}:allow")
    return exporter


def _given_addresses(value, path, nodes):
    """``{node: (address text, its key)}``: the mapping's entry, the one address, or the node's own address."""
    given = value.get("address")
    if given is None:
        return {node: (spec["address"], f"{path}:address") for node, spec in nodes.items()}
    if not isinstance(given, dict):
        return {node: (given, f"{path}:address") for node in nodes}
    schema.mapping(given, f"{path}:address", allowed=tuple(nodes), required=tuple(nodes))  # every node of the pair, no other
    return {node: (given[node], f"{path}:address:{node}") for node in nodes}


def _address(value, path, wildcard):
    """One node's exporter address: an IP address, not IPv4-mapped; unspecified only with ``wildcard``; no other special one."""
    address = schema.address(value, path)
    parsed = ipaddress.ip_address(address)
    if getattr(parsed, "ipv4_mapped", None) is not None:
        raise InvalidValue(path, f"{address} is an IPv4-mapped IPv6 address: write the IPv4 address {parsed.ipv4_mapped}")
    if parsed.is_unspecified:
        if not wildcard:
            raise InvalidValue(path, f"{address} is a wildcard (every address of the node, VIPs too): set wildcard: true to mean it")
        return address
    if wildcard:
        raise InvalidValue(path, f"{address} is not a wildcard (0.0.0.0 or ::), which wildcard: true is for")
    if not parsed.is_loopback:
        schema.address(address, path, host=True)  # multicast, link-local, broadcast, reserved: not one a host holds
    return address


def _allow(value, path):
    """The networks Prometheus scrapes from: a non-empty list of distinct networks, none of them the whole Internet."""
    if not isinstance(value, list):
        raise InvalidValue(path, f"expected a list of networks (198.51.100.0/28), got {schema.type_name(value)}")
    if not value:
        raise InvalidValue(path, "must name at least one network: the addresses Prometheus scrapes from")
    if len(value) > MAX_ALLOW:
        raise InvalidValue(path, f"at most {MAX_ALLOW} networks")
    networks = []
    for index, item in enumerate(value):
        network = _network(item, f"{path}:{index}")
        if network in networks:
            raise InvalidValue(f"{path}:{index}", f"{network} is already allow:{networks.index(network)}")
        networks.append(network)
    return networks


def _network(value, path):
    """A network in its canonical text (``198.51.100.0/28``, an address alone as ``/32`` or ``/128``), host bits clear."""
    text = schema.string(value, path)
    try:
        network = ipaddress.ip_network(text)
    except ValueError as error:
        raise InvalidValue(path, f"{text!r} is not a network with its host bits clear ({error})") from None
    if text != value or "%" in text:
        raise InvalidValue(path, f"{value!r} is not a network as written (no blanks, no zone)")
    if network.prefixlen == 0:
        raise InvalidValue(path, f"{network} is every address: name the networks Prometheus scrapes from")
    return str(network)


def family(address):
    """``ipv4`` or ``ipv6``: the firewall's name of an address's family."""
    return f"ipv{schema.address_family(address)}"


def is_wildcard(address):
    return ipaddress.ip_address(address).is_unspecified


def check(model, path):
    """
    The exporter against the rest of the pair (``path``: ``lbpair``): each node's address is its
    own or a non-global one, a VIP only with ``on_vip``; its port clashes with no other listener
    there; the ``allow`` networks are of its family; the firewall sees that family.
    """
    exporter = model["haproxy"]["prometheus"]
    if exporter is None:
        return
    key = f"{path}:haproxy:prometheus"
    for node, address in exporter["addresses"].items():
        address_key = exporter["keys"][node]
        _check_owner(model, node, address, address_key)
        _check_vip(model, exporter, address, address_key)
        _check_listeners(model, exporter, node, address, f"{key}:port")
        _check_families(model, exporter, address, key, address_key)


def _check_owner(model, node, address, key):
    """Not another node's address; a global address only if it is the node's own."""
    owners = {spec[field]: name for name, spec in model["nodes"].items() for field in ("address", "address6") if spec[field]}
    if owners.get(address, node) != node:
        raise InvalidValue(
            key,
            f"{address} is the address of node {owners[address]}, not of {node}: give each node its own "
            "(a mapping by node), or leave address out (each node its own lbpair:nodes address)",
        )
    vips = {vip for _name, _service, vip, _key in services.service_vips(model["services"])}
    parsed = ipaddress.ip_address(address)
    if parsed.is_global and address not in owners and address not in vips:
        raise InvalidValue(
            key,
            f"{address} is a global address the pillar does not know as node {node}'s: use the node's own "
            "(lbpair:nodes) or one of a private or management network",
        )


def _check_vip(model, exporter, address, key):
    """A VIP only when ``on_vip`` says so (then on the MASTER only), and ``on_vip`` only for a VIP."""
    owners = {vip: name for name, _service, vip, _key in services.service_vips(model["services"])}
    if address in owners and not exporter["on_vip"]:
        raise InvalidValue(
            key, f"{address} is service {owners[address]}'s VIP: the exporter would face its clients; set on_vip: true to mean it"
        )
    if exporter["on_vip"] and address not in owners:
        raise InvalidValue(key, f"{address} is no service's VIP, which on_vip: true is for")


def _listeners(model, node):
    """``(address, port, what)`` of every other listener of HAProxy on ``node``."""
    for name, service, vip, _key in services.service_vips(model["services"]):
        yield vip, service["port"], f"service {name}"
        if service["tls"]:
            yield vip, service["tls"]["port"], f"service {name} (TLS)"
    for field in ("address", "address6"):
        if model["nodes"][node][field]:  # reserved even without stick tables: a sticky service adds the peers section
            yield model["nodes"][node][field], model["haproxy"]["peers_port"], "the peers port (lbpair:haproxy:peers_port)"
    probe = model["vrrp"]["probe"]
    if probe["enabled"]:
        yield "127.0.0.1", probe["port"], "keepalived's probe (lbpair:vrrp:probe:port)"


def _check_listeners(model, exporter, node, address, key):
    """No listener of HAProxy binds the exporter's port on its address (a wildcard covers every address of its family)."""
    port = exporter["port"]
    for other, other_port, what in _listeners(model, node):
        same = other == address or (is_wildcard(address) and family(other) == family(address))
        if same and other_port == port:
            raise InvalidValue(key, f"{address} port {port} is also where {what} listens on node {node}")


def _check_families(model, exporter, address, key, address_key):
    """Each ``allow`` network is of the address's family, and the firewall filters that family."""
    for index, network in enumerate(exporter["allow"]):
        if family(network.split("/")[0]) != family(address):
            raise InvalidValue(f"{key}:allow:{index}", f"{network} is not of the family of the exporter's address {address}")
    firewall = model["firewall"]
    table_family = firewall["nft_table"].split()[0]
    if firewall["backend"] == "nftables" and table_family != "inet" and table_family != {"ipv4": "ip", "ipv6": "ip6"}[family(address)]:
        raise InvalidValue(
            address_key, f"{address}: the nft table {firewall['nft_table']!r} (lbpair:firewall:nft_table) sees no {family(address)}: "
            "the exporter would be open to all"
        )  # fmt: skip
