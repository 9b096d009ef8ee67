"""
A real-world service on the whole lab (issue 12): shop, on an IPv4 and an IPv6 VIP of its own, in
a VRRP instance that lb2 prefers while lb1 stays MASTER of the seed's services (active/active),
over HTTPS with two certificates of the lab's own CA picked by SNI, routed by Host and path to two
backends (the lab's foo and bar servers), plain HTTP redirected to HTTPS, and a stick table the
two nodes share: the client keeps its server across a failover, over IPv4 and IPv6, and DNS
follows each instance. A renewed certificate is installed under load with no failed request.
"""

import copy

import pytest

from lab import demo, scenarios
from lab.load import ClientLoad
from lab.pki import Ca
from lab.util import wait_until
from tests.integration.pair.conftest import ADDRESSES6, NODES, VIPS, apply_state, wait_for_vips

VIP, VIP6, SHOP, API = scenarios.SHOP_VIP, scenarios.SHOP_VIP6, scenarios.SHOP_HOST, scenarios.SHOP_API_HOST
SHOP_VIPS = sorted([VIP, VIP6])
SOCKET_QUERY = (
    "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock');"
    " s.sendall(sys.argv[1].encode() + b'\\n'); print(s.makefile().read())"
)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    authority = Ca("lbpair lab CA")
    authority.file = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.file.write_text(authority.pem)
    return authority


def apply_everywhere(salt_cli):
    for node in NODES:
        states = apply_state(salt_cli, node)
        failed = {name: state["comment"] for name, state in states.items() if state["result"] is False}
        assert not failed, failed


def shop_dns(services):
    return services.named.query("shop", "A") + services.named.query("shop", "AAAA")


@pytest.fixture(scope="module")
def shop(lab, highstated, salt_cli, pillar, services, ca, history_path):
    lbpair = scenarios.with_shop(pillar.seed, ca, ADDRESSES6)
    for node in NODES:  # a planned switchover earlier leaves the node it moved from deferring, in every instance
        assert salt_cli.run("lbpair_keepalived.defer", "on=False", minion_tgt=node).returncode == 0
    pillar.write(lbpair)
    try:
        apply_everywhere(salt_cli)
        wait_until(lambda: lab.vips_on("lb2", SHOP_VIPS) == SHOP_VIPS, 30, what="shop's VIPs on lb2")
        try:
            wait_until(lambda: shop_dns(services) == ["192.0.2.12", ADDRESSES6["lb2"]], 30, what="DNS shop pointing at lb2")
        except TimeoutError:
            records = [{k: r.get(k) for k in ("kind", "minion", "instance", "state", "at", "dns", "error")} for r in demo.history_records(history_path)]
            raise AssertionError(f"DNS shop: {shop_dns(services)}; history: {records[-30:]}") from None
        yield lbpair
    finally:
        pillar.restore()
        apply_everywhere(salt_cli)


def https(lab, ca, host, path="/", *extra, vip=VIP):
    """The body a client gets from ``https://<host><path>`` on shop's *vip*, verifying the lab CA's certificate."""
    address = f"[{vip}]" if ":" in vip else vip
    return lab.curl(f"https://{host}{path}", "--cacert", str(ca.file), "--resolve", f"{host}:443:{address}", *extra)


def stats_socket(lab, node, command):
    return lab.exec(node, ["/opt/saltenv/bin/python3", "-c", SOCKET_QUERY, command]).stdout


def served(lab, host, field="-subject"):
    """A field of the certificate HAProxy serves for SNI ``host`` (``-subject``, ``-enddate``)."""
    out = lab.exec("client", ["sh", "-c", f"openssl s_client -connect {VIP}:443 -servername {host} </dev/null 2>/dev/null"
                                          f" | openssl x509 -noout {field}"], check=False).stdout  # fmt: skip
    return out.strip()


def test_https_is_routed_by_host_and_path_with_the_certificate_sni_picks_over_ipv4_and_ipv6(lab, shop, ca):
    for vip in (VIP, VIP6):
        assert https(lab, ca, SHOP, vip=vip) in ("foo1", "foo2"), vip
        assert https(lab, ca, API, vip=vip) in ("bar1", "bar2"), vip
        assert https(lab, ca, SHOP, "/api/orders", vip=vip) in ("bar1", "bar2"), vip
    assert SHOP in served(lab, SHOP) and API in served(lab, API)
    redirect = lab.curl(f"http://{VIP}/cart", "-H", f"Host: {SHOP}", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert redirect == f"301 https://{SHOP}/cart"
    assert https(lab, ca, SHOP, "/", "--http2", "-o", "/dev/null", "-w", "%{http_version}") == "2"


def test_each_node_is_master_of_its_instance_and_dns_follows_each(lab, shop, salt_master, services):
    assert lab.vips_on("lb1", VIPS + SHOP_VIPS) == VIPS and lab.vips_on("lb2", VIPS + SHOP_VIPS) == SHOP_VIPS
    status = salt_master.salt_run_cli(timeout=60).run("lbpair.status").data
    states = {instance: entry["states"] for instance, entry in status["pairs"]["lb1+lb2"]["instances"].items()}
    assert states == {
        "lbpair_51": {"lb1": "MASTER", "lb2": "BACKUP"},
        "lbpair_52": {"lb1": "BACKUP", "lb2": "MASTER"},
        "lbpair_52_6": {"lb1": "BACKUP", "lb2": "MASTER"},
    }, status
    assert services.named.query("active", "A") == ["192.0.2.11"] and shop_dns(services) == ["192.0.2.12", ADDRESSES6["lb2"]]


def test_the_client_keeps_its_server_across_a_failover_over_ipv4_and_ipv6(lab, shop, ca, services, history_path):
    clients = [lab.client_address(f"203.0.113.{host}") for host in (101, 102)]
    first = {client: https(lab, ca, SHOP, "/", "--interface", client) for client in clients}
    client = next(client for client, server in first.items() if server == "foo2")  # round robin: one each
    assert {https(lab, ca, SHOP, "/", "--interface", client) for _ in range(4)} == {"foo2"}  # stuck to it
    # lb2's entry reaches lb1 (the peers push it within milliseconds)
    wait_until(lambda: client in stats_socket(lab, "lb1", "show table shop.web"), 5, what="the entry in lb1's table")
    failover = len(demo.history_records(history_path))
    lab.exec("lb2", ["systemctl", "stop", "haproxy"])
    try:
        wait_until(lambda: lab.vips_on("lb1", SHOP_VIPS) == SHOP_VIPS, 30, what="shop's VIPs on lb1")
        assert {https(lab, ca, SHOP, "/", "--interface", client) for _ in range(4)} == {"foo2"}
        newcomer = lab.client_address("203.0.113.103")
        assert https(lab, ca, SHOP, "/", "--interface", newcomer) == "foo1"  # lb1's own round robin would start there
        assert https(lab, ca, SHOP, vip=VIP6) in ("foo1", "foo2") and https(lab, ca, API, vip=VIP6) in ("bar1", "bar2")
        wait_until(lambda: shop_dns(services) == ["192.0.2.11", ADDRESSES6["lb1"]], 30, what="DNS shop pointing at lb1")
        assert services.named.query("active", "A") == ["192.0.2.11"]  # it follows the seed's instance only
        moved = {("lb1", "lbpair_52", (VIP,)), ("lb1", "lbpair_52_6", (VIP6,))}  # with the VIPs of an instance added after the beacon started
        wait_until(lambda: moved <= master_transitions(history_path, since=failover), 30, what="lb1's MASTER records in the history")
    finally:
        lab.exec("lb2", ["systemctl", "start", "haproxy"])
    wait_until(lambda: lab.vips_on("lb2", SHOP_VIPS) == SHOP_VIPS, 60, what="shop's VIPs back on lb2")
    wait_for_vips(lab, "lb1")


def master_transitions(path, since):
    """``{(minion, instance, vips)}`` of the MASTER transitions in the master's history after the *since*-th record."""
    records = demo.history_records(path)[since:]
    return {(r["minion"], r["instance"], tuple(r["vips"])) for r in records if r.get("kind") == "transition" and r.get("state") == "MASTER"}


def test_a_renewed_certificate_is_installed_under_load_with_no_failed_request(lab, salt_cli, pillar, shop, ca):
    before = served(lab, SHOP, "-enddate")
    renewed = copy.deepcopy(shop)
    renewed["services"]["shop"]["tls"]["certificates"]["shop"]["pem"] = ca.bundle(SHOP, (SHOP,), days=365)
    # the seed's VIPs: a reload is HAProxy's as a whole, and each request is a new connection
    load = ClientLoad(lab, [f"http://{vip}/" for vip in sorted(s["vip"] for s in pillar.seed["services"].values())])
    try:
        pillar.write(renewed)
        for node in NODES:
            states = apply_state(salt_cli, node)
            assert states["HAProxy configuration is managed"]["changes"]["files"]["new"], states
    finally:
        counts = load.stop()
        pillar.write(shop)
    assert counts["requests"] > 100 and counts["failures"] == 0, counts
    assert served(lab, SHOP, "-enddate") != before and https(lab, ca, SHOP) in ("foo1", "foo2")


def test_a_switchover_moves_every_instance_and_rebalance_gives_shop_back_to_lb2(lab, shop, ca, salt_master, services):
    salt_run = salt_master.salt_run_cli(timeout=180)
    everything = sorted(VIPS + SHOP_VIPS)
    load = ClientLoad(lab, [f"http://{vip}/" for vip in VIPS])  # the seed's VIPs stay on lb1 all along
    try:
        moved = salt_run.run("lbpair.switchover", "lb1")
        assert moved.returncode == 0 and moved.data["moved"] is True, moved.stdout + moved.stderr
        assert lab.vips_on("lb1", everything) == everything and https(lab, ca, SHOP) in ("foo1", "foo2")
        rebalanced = salt_run.run("lbpair.rebalance")
        assert rebalanced.returncode == 0 and rebalanced.data["moved"] is True, rebalanced.stdout + rebalanced.stderr
        assert rebalanced.data["preferred"] == {"lbpair_51": "lb1", "lbpair_52": "lb2", "lbpair_52_6": "lb2"}
        assert lab.vips_on("lb1", everything) == VIPS and lab.vips_on("lb2", everything) == SHOP_VIPS
        assert https(lab, ca, SHOP, vip=VIP6) in ("foo1", "foo2")
        wait_until(lambda: shop_dns(services) == ["192.0.2.12", ADDRESSES6["lb2"]], 30, what="DNS shop back on lb2")
        assert salt_run.run("lbpair.rebalance").data["moved"] is False
    finally:
        counts = load.stop()
    assert counts["requests"] > 100 and counts["failures"] == 0, counts
