"""Pillar scenarios shared by tests and benchmarks: the seed, and N generated services."""

import copy

# VIPs from documentation ranges only, more than keepalived's 255 per block.
VIP_POOL = [f"203.0.113.{host}" for host in range(1, 251)] + [f"198.51.100.{host}" for host in range(101, 251)]


def many_services(pillar, count, servers=lambda index: 2 + index % 9):
    """Return a copy of *pillar* with *count* generated services of 2 to 10 servers each.

    Service *i* listens on ``VIP_POOL[i % 400]``, port ``80 + i // 400``: beyond 400 services,
    VIPs are shared on other ports.
    """
    generated = copy.deepcopy(pillar)
    generated["services"] = {
        f"svc{index:04d}": {
            "vip": VIP_POOL[index % len(VIP_POOL)],
            "port": 80 + index // len(VIP_POOL),
            "servers": {
                f"s{server}": {"address": f"192.0.2.{100 + server}", "port": 8000 + index % 1000}
                for server in range(servers(index))
            },
        }
        for index in range(count)
    }
    return generated


def many_https_services(pillar, count, ca):
    """
    Return :func:`many_services` made routed HTTPS services: service *i* has a certificate of its
    own (``svc<i>.example.net`` from *ca*, a :class:`lab.pki.Ca`), backends ``web`` (its servers)
    and ``api`` (two of them), routes by Host (``api.svc<i>...``) and by path (``/api/``), and plain
    HTTP redirected to HTTPS on port ``443 + i // 400`` (the plain port shifted past it).
    """
    generated = many_services(pillar, count)
    for index, (name, service) in enumerate(generated["services"].items()):
        host = f"{name}.example.net"
        servers = service.pop("servers")
        service["port"] += 1000  # 1080, 1081, ...: never the TLS port
        service["tls"] = {"port": 443 + index // len(VIP_POOL), "redirect_http": True,
                          "certificates": {"site": {"pem": ca.bundle(host, (host, f"api.{host}"))}}}  # fmt: skip
        service["backends"] = {"web": {"servers": servers}, "api": {"servers": dict(list(servers.items())[:2])}}
        service["routes"] = [{"host": f"api.{host}", "backend": "api"}, {"host": host, "path": "/api/", "backend": "api"}]
        service["default_backend"] = "web"
    return generated


def certificates_on_node(https_pillar, directory="/etc/haproxy/certs"):
    """
    *https_pillar* (:func:`many_https_services`) with each certificate given by ``path`` instead,
    as when an ACME client writes them on the node: ``(pillar, {path: PEM text})``, the files to
    write into *directory* first.
    """
    generated, files = copy.deepcopy(https_pillar), {}
    for name, service in generated["services"].items():
        for certificate_name, certificate in service["tls"]["certificates"].items():
            path = f"{directory}/{name}-{certificate_name}.pem"
            files[path] = certificate.pop("pem")
            certificate["path"] = path
    return generated, files


#: shop: the lab's real-world service (issue 12), on VIPs of its own, in a VRRP instance lb2 prefers
SHOP_VIP, SHOP_VIP6, SHOP_HOST, SHOP_API_HOST = "203.0.113.50", "2001:db8::50", "shop.example.net", "api.shop.example.net"
SHOP_VRID = 52
#: keepalived's names of shop's instances (IPv4, IPv6): what the beacon, the history and DNS call them
SHOP_INSTANCES = (f"lbpair_{SHOP_VRID}", f"lbpair_{SHOP_VRID}_6")
#: DNS records following shop's instance (the master's ``lbpair_reactions:dns:records``)
SHOP_RECORDS = [{"name": "shop", "type": record_type, "ttl": 30, "instance": SHOP_INSTANCES[0]} for record_type in ("A", "AAAA")]
#: keepalived's name of the seed's instance (its virtual_router_id is 51)
SEED_INSTANCE = "lbpair_51"
#: the lab's DNS records: ``active`` follows the seed's instance, ``shop`` shop's
LAB_RECORDS = [{"name": "active", "type": record_type, "ttl": 30, "instance": SEED_INSTANCE} for record_type in ("A", "TXT")] + SHOP_RECORDS


def shop_service(ca, shop_bundle=None):
    """
    shop over HTTPS on an IPv4 and an IPv6 VIP, with two certificates of *ca* (a :class:`lab.pki.Ca`)
    picked by SNI, routed by Host and path to two backends (the lab's foo and bar servers), plain
    HTTP redirected, and a stick table on web that the two nodes share. It is in VRRP instance
    ``shop``: see :func:`with_shop`. *shop_bundle* replaces shop's own certificate.
    """
    foo = {"foo1": {"address": "198.51.100.11", "port": 80}, "foo2": {"address": "198.51.100.12", "port": 80}}
    bar = {"bar1": {"address": "198.51.100.21", "port": 80}, "bar2": {"address": "198.51.100.22", "port": 80}}
    certificates = {"shop": {"pem": shop_bundle or ca.bundle(SHOP_HOST)}, "api": {"pem": ca.bundle(SHOP_API_HOST)}}
    return {
        "vip": SHOP_VIP,
        "vip6": SHOP_VIP6,
        "port": 80,
        "instance": "shop",
        "tls": {"redirect_http": True, "certificates": certificates},
        "backends": {"web": {"stick": {"expire": 600}, "servers": foo}, "api": {"health": {"path": "/"}, "servers": bar}},
        "routes": [{"host": SHOP_API_HOST, "backend": "api"}, {"host": SHOP_HOST, "path": "/api/", "backend": "api"}],
        "default_backend": "web",
    }


def with_shop(lbpair, ca, addresses6, shop_bundle=None):
    """
    A copy of *lbpair* (the seed) made an active/active, dual-stack pair: the nodes' IPv6
    *addresses6* (``{node: address}``) and :func:`shop_service` in instance ``shop`` (VRID 52),
    which lb2 prefers, while lb1 stays MASTER of the seed's services.
    """
    shop = copy.deepcopy(lbpair)
    for node, address6 in addresses6.items():
        shop["nodes"][node]["address6"] = address6
    shop["vrrp"]["instances"] = {"shop": {"virtual_router_id": SHOP_VRID, "preferred": "lb2"}}
    shop["services"]["shop"] = shop_service(ca, shop_bundle)
    return shop
