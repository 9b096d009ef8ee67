"""
The real Prometheus (Debian's 2.42) in the lab (:mod:`lab.prometheus`): it scrapes node_exporter
on both machines (the beacon's ``lbpair.prom``) and on mgmt (the master's ``lbpair_master.prom``)
and HAProxy's exporter every 2 s, and evaluates lbpair's alert rules itself. A failover shows in
the scraped gauges within one scrape interval and the beacon's tick; a VRRP cut fires
``LbpairSplitBrain`` through Prometheus' own rule evaluation, seen in its HTTP API, and it heals.
"""

import time

import pytest

from lab import drills, scenarios
from lab.prometheus import INTERVAL, LabPrometheus, PrometheusError, selector
from lab.util import wait_until
from tests.integration.pair.conftest import NODES, VIPS, wait_for_vips

pytestmark = pytest.mark.timeout(300)

MASTER, PEER = drills.MASTER, drills.PEER
PAIR = "+".join(NODES)  # the seed names no pair: its nodes joined
INSTANCE = scenarios.SEED_INSTANCE
BEACON_TICK = 1.0  # s: Salt calls the beacon once per loop_interval
SLACK = 0.5  # s: a scrape starts a moment late on two busy cores


@pytest.fixture(scope="module")
def prometheus(lab, highstated, pillar, master_textfile_dir):
    """Prometheus and the exporters up, the seed's pair as it starts (lb1 MASTER)."""
    with LabPrometheus(lab, master_textfile_dir, haproxy=pillar.haproxy_exporter) as running:
        wait_for_vips(lab, MASTER)
        yield running


@pytest.fixture
def api(prometheus):
    return prometheus.api


def master_gauge(node):
    return selector("lbpair_vrrp_state_master", pair=PAIR, node=node, vrrp_instance=INSTANCE)


def require_node_metrics(api, timeout=3 * INTERVAL):
    """The beacons' ``lbpair_vrrp_state_master`` in Prometheus (their ``lbpair.prom`` scraped)."""
    wait_until(lambda: api.values(master_gauge(MASTER)), timeout, what="lb1's lbpair_vrrp_state_master in Prometheus")


def test_every_target_is_up(prometheus, api, pillar):
    targets = prometheus.wait_for_targets()
    jobs = sorted((target["labels"]["job"], target["labels"]["host"]) for target in targets)
    expected = [("master", "mgmt"), *(("node", node) for node in NODES)]
    if pillar.haproxy_exporter:
        expected += [("haproxy", node) for node in NODES]
    assert jobs == sorted(expected), targets
    for target in targets:
        print(f"{target['labels']['job']:8} {target['scrapeUrl']:34} {target['health']} (last scrape {target['lastScrapeDuration']:.3f} s)")
    # node_exporter read every textfile it found (a malformed lbpair.prom would be a scrape error)
    errors = api.values("node_textfile_scrape_error")
    assert len(errors) == 3 and set(errors.values()) == {0.0}, errors
    assert str(prometheus.rule_file) in api.rule_files()
    print(f"rules {prometheus.rule_file}; active alerts: {[(a['labels']['alertname'], a['state']) for a in api.alerts()]}")


def test_the_haproxy_exporter_is_scraped(prometheus, api, pillar):
    assert pillar.haproxy_exporter
    prometheus.wait_for_targets()
    for node in NODES:
        assert api.value(selector("up", job="haproxy", host=node)) == 1.0
        assert api.value(f'count({{job="haproxy",host="{node}",__name__=~"haproxy_.+"}})') > 0


def test_a_failover_shows_in_the_scraped_gauges_within_a_scrape_interval(lab, prometheus, api):
    require_node_metrics(api)
    drills.peer_settled(lab)
    wait_until(lambda: api.value(master_gauge(MASTER)) == 1.0 and api.value(master_gauge(PEER)) == 0.0, 3 * INTERVAL, what="lb1 MASTER, lb2 not")
    drills.haproxy(lab, MASTER, "stop")
    try:
        moved = drills.moment_vips_on(lab, PEER, VIPS)
        seen = wait_until(lambda: api.value(master_gauge(PEER)) == 1.0 and time.monotonic(), 2 * INTERVAL + BEACON_TICK + 5,
                          interval=0.05, what="lb2's MASTER gauge at 1 in Prometheus")  # fmt: skip
        wait_until(lambda: api.value(master_gauge(MASTER)) == 0.0, 2 * INTERVAL, what="lb1's MASTER gauge at 0")
        # when lb2 entered MASTER (the beacon's record of keepalived's signal), and the first scrape that had it
        changed = api.value(selector("lbpair_vrrp_last_transition_timestamp_seconds", pair=PAIR, node=PEER, vrrp_instance=INSTANCE))
        samples = next(iter(api.samples(master_gauge(PEER), 60).values()))
        scraped = min(moment for moment, value in samples if value == 1.0 and moment >= changed)
        print(f"lb2 MASTER at {changed:.3f}; first scrape with it {scraped - changed:.3f} s later; "
              f"VIPs seen on lb2 -> the query answering 1: {seen - moved:.3f} s (scrape interval {INTERVAL} s, beacon tick {BEACON_TICK} s)")  # fmt: skip
        assert 0 <= scraped - changed <= INTERVAL + BEACON_TICK + SLACK
        assert api.value(selector("lbpair_vrrp_state_fault", node=MASTER, vrrp_instance=INSTANCE)) == 1.0
    finally:
        drills.haproxy(lab, MASTER, "start")
    wait_for_vips(lab, MASTER, timeout=60)
    wait_until(lambda: api.value(master_gauge(MASTER)) == 1.0, 3 * INTERVAL, what="lb1's MASTER gauge back at 1")


def test_the_master_metrics_name_the_master(lab, prometheus, api):
    wait_until(lambda: api.values('{job="master",__name__="lbpair_pair_master"}'), 3 * INTERVAL, what="lbpair_pair_master")
    wait_for_vips(lab, MASTER)
    masters = f"{selector('lbpair_pair_master', pair=PAIR, vrrp_instance=INSTANCE)} == 1"
    wait_until(lambda: [dict(labels)["node"] for labels in api.values(masters)] == [MASTER], 30, what="the master's metrics naming lb1 MASTER")


def test_a_vrrp_cut_fires_the_split_brain_alert_and_it_heals(lab, prometheus, api):
    require_node_metrics(api)
    wait_for_vips(lab, MASTER)
    drills.peer_settled(lab)
    assert api.alerts("LbpairSplitBrain") == []
    cut = time.monotonic()
    with drills.vrrp_cut(lab):
        drills.moment_vips_on(lab, PEER, VIPS)  # both MASTER now
        firing = wait_until(lambda: [a for a in api.alerts("LbpairSplitBrain") if a["state"] == "firing"], 60, interval=0.5,
                            what="LbpairSplitBrain firing")  # fmt: skip
        fired = time.monotonic()
    healed = wait_until(lambda: api.alerts("LbpairSplitBrain") == [] and time.monotonic(), 30, interval=0.5, what="LbpairSplitBrain resolved")
    print(f"LbpairSplitBrain firing {fired - cut:.1f} s after the cut (rule: for 10s, evaluated every {INTERVAL} s); "
          f"gone {healed - fired:.1f} s after VRRP passes again")  # fmt: skip
    assert [(a["labels"]["pair"], a["labels"]["vrrp_instance"]) for a in firing] == [(PAIR, INSTANCE)]
    wait_for_vips(lab, MASTER)
    assert api.value(f"sum({selector('lbpair_vrrp_state_master', pair=PAIR, vrrp_instance=INSTANCE)})") == 1.0


def test_a_hostile_label_value_is_escaped_in_queries(prometheus, api):
    """A value from a node ends up in a PromQL string literal, never in the query's syntax."""
    hostile = 'lb1"} or vector(1) #'
    assert api.values(f'lbpair_vrrp_state_master{{node="{hostile}"}}') != {}  # unescaped, it is another query
    for value in (hostile, "lb1\\", 'lb1\n"} or up', 'lb1"}', "\\\""):
        assert api.values(selector("lbpair_vrrp_state_master", node=value)) == {}
    with pytest.raises(PrometheusError, match="bad_data"):
        api.values('lbpair_vrrp_state_master{node="lb1\\"}')  # a value ending in a backslash, unescaped
