"""
TLS termination in a real HAProxy, in a throwaway network namespace with real HTTP backends and a
throwaway CA: curl verifies the served chain against the CA, SNI picks the certificate of the
host asked for (the first one without SNI), ALPN negotiates h2, and plain HTTP answers a 301 to https.
"""

import pytest

from lab import netns
from saltext.lbpair.node import haproxy, tls_files
from tests.functional.rigs import node_model, shop_haproxy, shop_pillar
from tests.unit.test_routing import SHOP
from tests.unit.tls_ca import shared_ca

NAMESPACE = "lbpair-tls"
VIP = SHOP["vip"]


def tls_pillar(seed_pillar, socket_path, ca, port=443):
    lbpair = shop_pillar(seed_pillar, socket_path)
    certificates = {"shop": {"pem": ca.shop}, "api": {"pem": ca.api}}
    lbpair["services"]["shop"]["tls"] = {"port": port, "redirect_http": True, "certificates": certificates}
    return lbpair


def curl(*args):
    return netns.run(NAMESPACE, ["curl", "-s", "--max-time", "3", *args], check=False)


def https(host, *args):
    """``curl`` to https://host/ on the VIP, checking the served chain against the throwaway CA."""
    return curl("--cacert", str(https.ca_file), "--resolve", f"{host}:443:{VIP}", *args, f"https://{host}/")


def served_subject(servername=None):
    """The subject of the certificate HAProxy serves for ``servername`` (no SNI for None)."""
    sni = ["-servername", servername] if servername else ["-noservername"]
    done = netns.run(NAMESPACE, ["openssl", "s_client", *sni, "-connect", f"{VIP}:443"], check=False, input="", timeout=10)
    return next(line for line in done.stdout.splitlines() if line.startswith("subject="))


def served_config(tmp_path, seed_pillar, port=443):
    """haproxy.cfg of the shop with TLS on ``port``, its certificate files written; the CA's file for ``https``."""
    ca = shared_ca()
    https.ca_file = tmp_path / "ca.pem"
    https.ca_file.write_text(ca.pem)
    model = node_model(tls_pillar(seed_pillar, str(tmp_path / "admin.sock"), ca, port), "lb1")
    certificate_dir = str(tmp_path / "certs" / "lbpair")
    tls_files.write(certificate_dir, model)
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render_config(model, certificate_dir))
    return config


@pytest.fixture
def tls_haproxy(tmp_path, seed_pillar):
    config = served_config(tmp_path, seed_pillar)
    with shop_haproxy(NAMESPACE, config, lambda: https("shop.example.net", "-o", "/dev/null").returncode == 0):
        yield shared_ca()


def redirect(host, path="/cart?item=7"):
    """The status and location plain HTTP answers for ``Host: host``."""
    return curl("-H", f"Host: {host}", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", f"http://{VIP}{path}").stdout


def test_a_redirect_to_another_tls_port_keeps_the_host_an_ipv6_literal_included(tmp_path, seed_pillar):
    config = served_config(tmp_path, seed_pillar, port=8443)
    with shop_haproxy(NAMESPACE, config, lambda: redirect("shop.example.net").startswith("301")):
        assert redirect("shop.example.net:80") == "301 https://shop.example.net:8443/cart?item=7"
        assert redirect("[2001:db8::50]:80") == "301 https://[2001:db8::50]:8443/cart?item=7"
        assert redirect("[2001:db8::50]") == "301 https://[2001:db8::50]:8443/cart?item=7"


def test_curl_verifies_the_chain_against_the_ca_and_gets_a_backend(tls_haproxy):
    done = https("shop.example.net", "-w", "\n%{http_code} %{ssl_verify_result}")
    assert done.returncode == 0, done.stderr
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "200 0" and body.strip() in ("web1", "web2")


def test_sni_picks_the_certificate_of_the_host_and_the_first_is_the_default(tls_haproxy):
    assert served_subject("api.shop.example.net") == "subject=CN = api.shop.example.net"
    assert served_subject("shop.example.net") == "subject=CN = shop.example.net"
    assert served_subject() == "subject=CN = shop.example.net"
    done = https("api.shop.example.net")
    assert done.returncode == 0 and done.stdout.strip() == "api1"


def test_alpn_negotiates_h2_and_http_1_1_still_works(tls_haproxy):
    assert https("shop.example.net", "--http2", "-o", "/dev/null", "-w", "%{http_version}").stdout == "2"
    done = https("shop.example.net", "--http1.1", "-v", "-o", "/dev/null")
    assert done.returncode == 0 and "ALPN: server accepted http/1.1" in done.stderr


def test_plain_http_is_redirected_to_https_with_its_path(tls_haproxy):
    assert redirect("shop.example.net") == "301 https://shop.example.net/cart?item=7"


def test_a_foreign_host_goes_to_the_canonical_one_over_https_in_one_hop(tls_haproxy):
    done = curl("-H", "Host: www.shop.example.net", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", f"http://{VIP}/a")
    assert done.stdout == "301 https://shop.example.net/a"
    done = https("www.shop.example.net", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert done.stdout == "301 https://shop.example.net/"
