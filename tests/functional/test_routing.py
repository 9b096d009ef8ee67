"""
A routed service in a real HAProxy, in a throwaway network namespace with real HTTP backends:
requests go to the backend their Host and path pick, the others to the default one; a foreign
Host is redirected to the canonical one; a backend failing its modelled health check is left out.
"""

import time

import pytest

from lab import netns
from saltext.lbpair.node import haproxy
from tests.functional.rigs import node_model, shop_haproxy, shop_pillar
from tests.unit.test_routing import SHOP

NAMESPACE = "lbpair-routing"
VIP = SHOP["vip"]


def curl(host, url_path="/"):
    """``(status, body, location)`` of a GET to the VIP with this Host (status 0: no answer within 3 s)."""
    out = netns.run(NAMESPACE, ["curl", "-s", "--max-time", "3", "-H", f"Host: {host}", "-w", "\n%{http_code} %{redirect_url}",
                                f"http://{VIP}{url_path}"], check=False).stdout  # fmt: skip
    body, _, tail = out.rpartition("\n")
    status, _, location = tail.partition(" ")
    return int(status), body.strip(), location


def serving():
    return netns.run(NAMESPACE, ["curl", "-s", "-o", "/dev/null", f"http://{VIP}/"], check=False).returncode == 0


@pytest.fixture
def routed_haproxy(tmp_path, seed_pillar):
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render_config(node_model(shop_pillar(seed_pillar, str(tmp_path / "admin.sock")), "lb1")))
    with shop_haproxy(NAMESPACE, config, serving) as backends:
        yield backends


def test_host_and_path_pick_the_backend_and_the_rest_goes_to_the_default(routed_haproxy):
    assert curl("api.shop.example.net") == (200, "api1", "")
    assert curl("shop.example.net", "/api/orders") == (200, "api1", "")
    assert {curl("shop.example.net", "/")[1] for _ in range(4)} == {"web1", "web2"}
    assert curl("shop.example.net", "/apiary")[1] in ("web1", "web2")  # a prefix of /api/, not of /apiary


def test_a_foreign_host_is_redirected_to_the_canonical_one(routed_haproxy):
    assert curl("www.shop.example.net", "/cart?item=7") == (301, "", "http://shop.example.net/cart?item=7")


def test_a_backend_failing_its_health_check_is_left_out(routed_haproxy):
    routed_haproxy["api1"].kill()
    deadline = time.monotonic() + 15  # fall 2 x inter 0.5 s; until then HAProxy retries the dead server
    while curl("api.shop.example.net")[0] != 503:
        assert time.monotonic() < deadline, "api1 was never marked down"
        time.sleep(0.2)
    assert curl("shop.example.net", "/")[0] == 200
