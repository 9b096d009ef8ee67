"""
HAProxy's Prometheus exporter (``lbpair:haproxy:prometheus``), proven by behaviour: lb1, a
Prometheus host inside the exporter's ``allow`` and a third host outside it on one segment (IPv4
and IPv6). A real HAProxy runs lb1's haproxy.cfg as lbpair renders it: Prometheus scrapes
``/metrics`` (HAProxy's process and frontend series) and is denied any other path; with lb1's
exporter rules (either backend) the third host's SYNs are dropped and Prometheus still scrapes;
applying again changes nothing; without an exporter in the pillar the rules go.
"""

import contextlib
import copy
import subprocess

import pytest

from lab import netns, rogue
from lab.util import stop_process, wait_until
from saltext.lbpair.node import haproxy
from saltext.lbpair.node.firewall import exporter
from tests.functional.conftest import set_pillar
from tests.functional.rigs import connects, node_model

SWITCH = "lbpair-exp-sw"
HOSTS = {"lb1": "lbpair-exp-lb1", "prometheus": "lbpair-exp-prom", "third": "lbpair-exp-x"}
ADDRESSES = {
    "lb1": {"ipv4": "192.0.2.11", "ipv6": "2001:db8::11"},
    "prometheus": {"ipv4": "192.0.2.50", "ipv6": "2001:db8::50"},
    "third": {"ipv4": "192.0.2.66", "ipv6": "2001:db8::66"},
}
PREFIX = {"ipv4": 32, "ipv6": 128}
WILDCARDS = {"ipv4": "0.0.0.0", "ipv6": "::"}
PORT = 9101
LISTINGS = {
    "iptables": [["iptables", "-S", "INPUT"], ["ip6tables", "-S", "INPUT"]],
    "nftables": [["nft", "list", "chain", "inet", "filter", "input"]],
}


@pytest.fixture
def segment():
    """lb1, Prometheus and a third host on one bridge (the default ACCEPT policy), each with an IPv4 and an IPv6 address."""
    with contextlib.ExitStack() as stack:
        netns.add(SWITCH)
        stack.callback(netns.delete, SWITCH)
        netns.bridge(SWITCH, "br0")
        for host, namespace in HOSTS.items():
            stack.enter_context(rogue.on_segment(SWITCH, "br0", namespace, f"{ADDRESSES[host]['ipv4']}/24"))
            netns.ip(namespace, "address", "add", f"{ADDRESSES[host]['ipv6']}/64", "dev", "eth0", "nodad")  # usable at once
        # as the lbpair.haproxy SLS sets it on a node: the services' VIPs bind before keepalived brings them
        netns.run(HOSTS["lb1"], ["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1", "net.ipv6.ip_nonlocal_bind=1"], timeout=10)
        yield HOSTS


@pytest.fixture
def wildcard():
    """Whether the exporter binds the wildcard of its family (tests parametrize it)."""
    return False


@pytest.fixture
def lbpair(seed_pillar, tmp_path, family, backend, wildcard):
    """
    The seed pillar with an exporter at *PORT* on the nodes' addresses of *family* (or its wildcard),
    allowing the Prometheus host only; HAProxy as a plain process of the test (no chroot, no user
    switch, its own socket).
    """
    seed_pillar["nodes"]["lb1"]["address6"], seed_pillar["nodes"]["lb2"]["address6"] = "2001:db8::11", "2001:db8::12"
    prometheus = {"port": PORT, "allow": [f"{ADDRESSES['prometheus'][family]}/{PREFIX[family]}"]}
    if family == "ipv6":
        prometheus["address"] = {"lb1": "2001:db8::11", "lb2": "2001:db8::12"}
    if wildcard:
        prometheus.update(address=WILDCARDS[family], wildcard=True)
    seed_pillar["haproxy"] = {
        "stats_socket": str(tmp_path / "admin.sock"),
        "global": {"chroot": None, "user": None, "group": None, "daemon": None},
        "prometheus": prometheus,
    }
    seed_pillar["firewall"] = {"backend": backend}
    return seed_pillar


def url(family, url_path):
    host = ADDRESSES["lb1"][family]
    return f"http://{f'[{host}]' if family == 'ipv6' else host}:{PORT}{url_path}"


def scrape(host, family, url_path="/metrics"):
    """``(HTTP status, body)`` of a GET from *host* to lb1's exporter; status 0 when no answer came within 2 s."""
    done = netns.run(
        HOSTS[host], ["curl", "-sg", "--path-as-is", "-m", "2", "-o", "-", "-w", "\n%{http_code}", url(family, url_path)], check=False, timeout=10
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), body


@pytest.fixture
def haproxy_on_lb1(segment, lbpair, tmp_path, family):
    """A real HAProxy on lb1 with the configuration lbpair renders for it, once it answers Prometheus."""
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render_config(node_model(lbpair, "lb1")))
    subprocess.run(["haproxy", "-c", "-q", "-f", str(config)], check=True, timeout=30)  # the check the state runs before install
    process = netns.popen(HOSTS["lb1"], ["haproxy", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: scrape("prometheus", family)[0] == 200, 15, interval=0.2, what="HAProxy's exporter answering")
        yield config
    finally:
        stop_process(process)


def on_lb1(function, lbpair):
    with netns.enter(HOSTS["lb1"]):
        return function(node_model(lbpair, "lb1"))


def wanted(family, wildcard=False):
    destination = WILDCARDS[family] if wildcard else ADDRESSES["lb1"][family]
    return sorted([
        f"lbpair-prometheus {ADDRESSES['prometheus'][family]}/{PREFIX[family]} to {destination} port {PORT}",
        f"lbpair-prometheus drop {family} to {destination} port {PORT}",
    ])  # fmt: skip


def listing(backend):
    """lb1's INPUT chains as the backend lists them."""
    return "".join(netns.run(HOSTS["lb1"], command, timeout=10).stdout for command in LISTINGS[backend])


@pytest.mark.parametrize("backend", ["iptables"])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_prometheus_scrapes_haproxys_series_and_other_paths_are_denied(haproxy_on_lb1, family, backend):
    status, body = scrape("prometheus", family)
    assert status == 200
    series = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and not line.startswith("#")}
    assert any(name.startswith("haproxy_process_") for name in series), sorted(series)[:20]
    assert any(name.startswith("haproxy_frontend_") for name in series), sorted(series)[:20]
    assert 'haproxy_frontend_current_sessions{proxy="foo"} 0' in body  # the pair's services are in it
    assert any(line.startswith("haproxy_process_uptime_seconds ") for line in body.splitlines())
    for other in ("/", "/stats", "/metrics/../admin", "/metricsx", "/;csv"):
        assert scrape("prometheus", family, other)[0] == 403, other


@pytest.mark.parametrize("wildcard", [False, True], ids=["address", "wildcard"])
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_a_scrape_from_outside_allow_is_dropped_and_applying_again_changes_nothing(haproxy_on_lb1, lbpair, family, backend, wildcard):
    assert scrape("third", family)[0] == 200  # the control: without the rules anyone scrapes
    assert on_lb1(exporter.allow, lbpair) == {"added": wanted(family, wildcard), "removed": []}
    assert not connects(HOSTS["third"], ADDRESSES["lb1"][family], PORT)  # its SYN dropped: no answer, not even a refusal
    assert scrape("third", family)[0] == 0
    assert scrape("prometheus", family)[0] == 200
    assert on_lb1(exporter.allow, lbpair) == {"added": [], "removed": []}
    assert on_lb1(exporter.rules, lbpair) == dict.fromkeys(wanted(family, wildcard), True)
    text = listing(backend)
    assert text.count("lbpair-prometheus") == len(wanted(family)), text  # no duplicates


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
@pytest.mark.parametrize("family", ["ipv4"])
def test_without_an_exporter_the_rules_go(haproxy_on_lb1, lbpair, family, backend):
    on_lb1(exporter.allow, lbpair)
    without = copy.deepcopy(lbpair)
    del without["haproxy"]["prometheus"]
    assert on_lb1(exporter.rules, without) == {}
    assert on_lb1(exporter.allow, without) == {"added": [], "removed": wanted(family)}
    assert "lbpair-prometheus" not in listing(backend)
    assert scrape("third", family)[0] == 200  # the HAProxy still running the old configuration is open again


@pytest.mark.parametrize("backend", ["iptables"])
@pytest.mark.parametrize("family", ["ipv4"])
def test_the_state_predicts_applies_and_then_changes_nothing(segment, lbpair, family, backend, loaders):
    set_pillar(loaders, lbpair)
    with netns.enter(HOSTS["lb1"]):
        predicted = loaders.states.lbpair_firewall.prometheus_allowed(name="exporter", test=True)
        assert predicted.result is None and predicted.changes == {"added": wanted(family)}, predicted
        assert "lbpair-prometheus" not in listing(backend)
        applied = loaders.states.lbpair_firewall.prometheus_allowed(name="exporter")
        assert applied.result is True and applied.changes == {"added": wanted(family)}, applied
        again = loaders.states.lbpair_firewall.prometheus_allowed(name="exporter")
        assert again.result is True and again.changes == {} and "in place" in again.comment, again
        assert loaders.modules.lbpair_firewall.prometheus_rules() == dict.fromkeys(wanted(family), True)


def test_the_configured_state_installs_the_exporter_checked_by_haproxy_and_removes_it(state_functions, modules, loaders, pillar):
    """Through Salt: the candidate with the exporter passes the real ``haproxy -c`` and is installed; without it, it goes."""
    pillar["haproxy"]["prometheus"] = {"allow": ["198.51.100.0/28"]}
    set_pillar(loaders, pillar)
    ret = state_functions["lbpair_haproxy.configured"]("HAProxy configuration is managed")
    assert ret["result"] is True, ret["comment"]
    assert "+frontend lbpair_prometheus\n+    bind 192.0.2.11:8404\n" in ret["changes"]["diff"]
    with open(modules.opts["lbpair_haproxy"]["config_file"], encoding="utf-8") as handle:
        assert "http-request use-service prometheus-exporter if { path /metrics }" in handle.read()
    del pillar["haproxy"]["prometheus"]
    set_pillar(loaders, pillar)
    ret = state_functions["lbpair_haproxy.configured"]("HAProxy configuration is managed")
    assert ret["result"] is True and "-frontend lbpair_prometheus" in ret["changes"]["diff"], ret
