"""
A real-world service on the whole lab (issue 12): shop, on its own VIP, over HTTPS with two
certificates of the lab's own CA picked by SNI, routed by Host and path to two backends (the
lab's foo and bar servers), plain HTTP redirected to HTTPS, and a stick table the two nodes share:
the client keeps its server across a failover. A renewed certificate is installed under load
with no failed request.
"""

import copy

import pytest

from lab import scenarios
from lab.load import ClientLoad
from lab.pki import Ca
from lab.util import wait_until
from tests.integration.pair.conftest import NODES, apply_state, wait_for_vips

VIP, SHOP, API = scenarios.SHOP_VIP, scenarios.SHOP_HOST, scenarios.SHOP_API_HOST
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


@pytest.fixture(scope="module")
def shop(lab, highstated, salt_cli, pillar, ca):
    lbpair = copy.deepcopy(pillar.seed)
    lbpair["services"]["shop"] = scenarios.shop_service(ca)
    pillar.write(lbpair)
    try:
        apply_everywhere(salt_cli)
        wait_until(lambda: lab.vips_on("lb1", [VIP]) == [VIP], 30, what="shop's VIP on lb1")
        yield lbpair
    finally:
        pillar.restore()
        apply_everywhere(salt_cli)


def https(lab, ca, host, path="/", *extra):
    """The body a client gets from ``https://<host><path>`` on shop's VIP, verifying the lab CA's certificate."""
    return lab.curl(f"https://{host}{path}", "--cacert", str(ca.file), "--resolve", f"{host}:443:{VIP}", *extra)


def stats_socket(lab, node, command):
    return lab.exec(node, ["/opt/saltenv/bin/python3", "-c", SOCKET_QUERY, command]).stdout


def served(lab, host, field="-subject"):
    """A field of the certificate HAProxy serves for SNI ``host`` (``-subject``, ``-enddate``)."""
    out = lab.exec("client", ["sh", "-c", f"openssl s_client -connect {VIP}:443 -servername {host} </dev/null 2>/dev/null"
                                          f" | openssl x509 -noout {field}"], check=False).stdout  # fmt: skip
    return out.strip()


def test_https_is_routed_by_host_and_path_with_the_certificate_sni_picks(lab, shop, ca):
    assert https(lab, ca, SHOP) in ("foo1", "foo2")
    assert https(lab, ca, API) in ("bar1", "bar2")
    assert https(lab, ca, SHOP, "/api/orders") in ("bar1", "bar2")
    assert SHOP in served(lab, SHOP) and API in served(lab, API)
    redirect = lab.curl(f"http://{VIP}/cart", "-H", f"Host: {SHOP}", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert redirect == f"301 https://{SHOP}/cart"
    assert https(lab, ca, SHOP, "/", "--http2", "-o", "/dev/null", "-w", "%{http_version}") == "2"


def test_the_client_keeps_its_server_across_a_failover(lab, shop, ca):
    clients = [lab.client_address(f"203.0.113.{host}") for host in (101, 102)]
    first = {client: https(lab, ca, SHOP, "/", "--interface", client) for client in clients}
    client = next(client for client, server in first.items() if server == "foo2")  # round robin: one each
    assert {https(lab, ca, SHOP, "/", "--interface", client) for _ in range(4)} == {"foo2"}  # stuck to it
    # lb1's entry reaches lb2 (the peers push it within milliseconds)
    wait_until(lambda: client in stats_socket(lab, "lb2", "show table shop.web"), 5, what="the entry in lb2's table")
    lab.exec("lb1", ["systemctl", "stop", "haproxy"])
    try:
        wait_until(lambda: lab.vips_on("lb2", [VIP]) == [VIP], 30, what="shop's VIP on lb2")
        assert {https(lab, ca, SHOP, "/", "--interface", client) for _ in range(4)} == {"foo2"}
        newcomer = lab.client_address("203.0.113.103")
        assert https(lab, ca, SHOP, "/", "--interface", newcomer) == "foo1"  # lb2's own round robin would start there
    finally:
        lab.exec("lb1", ["systemctl", "start", "haproxy"])
    wait_for_vips(lab, "lb1", timeout=60)


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
