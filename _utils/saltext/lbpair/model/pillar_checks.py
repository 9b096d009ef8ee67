"""
The checks that relate the ``lbpair`` pillar's sections to each other, once each section is valid on
its own: the nodes' addresses and priorities, the VRRP check and instances, the services' VIPs and
servers. :func:`saltext.lbpair.model.pillar.normalize` runs them on the normalised model; each raises
:class:`~saltext.lbpair.core.errors.InvalidValue` naming the key at fault under ``path`` (``lbpair``).

.. code-block:: yaml

    lbpair:
      nodes:
        lb1: {address: 192.0.2.11, priority: 101}    # no service's VIP or server: 192.0.2.11
        lb2: {address: 192.0.2.12, priority: 100}    # address6 on every node for an IPv6 VIP
      vrrp:
        check: {weight: 2}                           # larger than the priority gap (1)
        instances: {shop: {virtual_router_id: 52}}   # used by a service
      services:
        shop:
          vip: 203.0.113.20                          # in one instance, whichever services share it
          instance: shop                             # one of vrrp:instances (or default)
          servers: {shop1: {address: 198.51.100.21, port: 443}}
"""

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import schema, services


def _node_owners(model):
    """``{address: node name}`` of every node address, IPv4 and IPv6."""
    return {node[field]: name for name, node in model["nodes"].items() for field in ("address", "address6") if node[field]}


def check_servers_are_not_node_addresses(model, path):
    """
    A server is never a node of the pair: through a service, the world would reach what listens on
    the node (its peers port, SSH), from the node's own address that the firewall lets in.
    """
    owners = _node_owners(model)
    for name, backend, pool in services.pools(model["services"]):
        pool_path = f"{path}:services:{name}" + (f":backends:{backend}" if backend else "")
        for server, value in pool["servers"].items():
            if value["address"] in owners:
                raise InvalidValue(
                    f"{pool_path}:servers:{server}:address",
                    f"{value['address']} is the address of node {owners[value['address']]}: a service's servers are other hosts",
                )


def check_vips_are_not_node_addresses(model, path):
    """No service's VIP is a node's address: the VIP moves between the nodes, the node's address stays."""
    owners = _node_owners(model)
    for name, _service, vip, key in services.service_vips(model["services"]):
        if vip in owners:
            raise InvalidValue(f"{path}:services:{name}:{key}", f"{vip} is the address of node {owners[vip]}")


def check_weight_moves_vips(model, path):
    """A failed check's weight lowers the MASTER's priority below its peer's (weight 0: FAULT instead)."""
    priorities = [node["priority"] for node in model["nodes"].values()]
    gap = max(priorities) - min(priorities)
    weight = model["vrrp"]["check"]["weight"]
    if weight and weight <= gap:  # weight 0: FAULT on failure
        raise InvalidValue(
            f"{path}:vrrp:check:weight",
            f"{weight} is not larger than the priority gap {gap} between the nodes: "
            "a failing HAProxy would never move the virtual IPs",
        )


def check_instances_are_used(model, path):
    """Each service names an instance of the pair, and each instance of ``instances`` carries a VIP."""
    instances, used = model["vrrp"]["instances"], {service["instance"] for service in model["services"].values()}
    for name, service in model["services"].items():
        if service["instance"] not in instances:
            raise InvalidValue(
                f"{path}:services:{name}:instance", f"there is no VRRP instance {service['instance']!r} ({', '.join(instances)})"
            )
    for name in instances:
        if name != services.DEFAULT_INSTANCE and name not in used:
            raise InvalidValue(f"{path}:vrrp:instances:{name}", "no service uses it (keepalived refuses an instance without VIPs)")


def check_each_vip_in_one_instance(model, path):
    """Services sharing a VIP (on other ports) share its instance: two MASTERs would hold it at once."""
    instance_of = {}
    for name, service, vip, key in services.service_vips(model["services"]):
        owner = instance_of.setdefault(vip, (service["instance"], name))
        if owner[0] != service["instance"]:
            raise InvalidValue(
                f"{path}:services:{name}:instance",
                f"{vip} ({key}) is also service {owner[1]}'s VIP, in instance {owner[0]}: a VIP belongs to one instance",
            )


def check_ipv6_vips(model, path):
    """
    IPv6 VRRP is sent from each node's IPv6 address: an IPv6 VIP needs one on every node;
    strict mode (RFC 5798) wants a link-local VIP first, which lbpair does not manage.
    """
    missing = [name for name, node in model["nodes"].items() if node["address6"] is None]
    ipv6_vips = [
        (vip, f"{path}:services:{name}:{key}")
        for name, _service, vip, key in services.service_vips(model["services"])
        if schema.address_family(vip) == 6
    ]
    for vip, vip_path in ipv6_vips:
        if missing:
            needed = f"{path}:nodes:{missing[0]}:address6"
            raise InvalidValue(vip_path, f"{vip} is an IPv6 VIP: its VRRP needs an IPv6 address on every node ({needed})")
        if model["vrrp"]["strict"]:
            raise InvalidValue(vip_path, "IPv6 VIPs are not supported with strict mode (it wants a link-local VIP first)")
