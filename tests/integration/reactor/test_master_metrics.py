"""
The master's metrics file, end to end: a beacon event reaches the real salt-master, its lbpair
engine reacts (the real keepalived nodes confirm, a real named takes the DNS update) and writes
``lbpair_master.prom`` (beside the history: ``lab.salt_master.reactor_settings``), which
prometheus_client's parser and ``promtool check metrics`` read.
"""

import shutil
import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from lab.util import wait_until
from tests.integration.reactor.conftest import INSTANCE

PAIR_NAME = "lb1+lb2"  # the name of the pair lbpair_reactions:nodes lists


def _samples(path):
    """``{(name, frozenset(labels)): value}`` of the metrics file (``{}`` while there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }  # fmt: skip


def _value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def test_after_a_failover_the_metrics_file_shows_the_new_master_and_counts_it(lab):
    path = Path(lab.history_path).with_name("lbpair_master.prom")
    lab.pair.make_master("lb2")
    entry = lab.transition("lb2", "MASTER", "BACKUP")
    lab.wait_history(lambda h: [r for r in h if r["kind"] == "transition" and r["seq"] == entry["seq"]], what="the transition")

    def shown():
        samples = _samples(path)
        master = {node: _value(samples, "lbpair_pair_master", pair=PAIR_NAME, vrrp_instance=INSTANCE, node=node) for node in ("lb1", "lb2")}
        counted = _value(samples, "lbpair_failovers_total", pair=PAIR_NAME, vrrp_instance=INSTANCE, kind="unplanned")
        dns = _value(samples, "lbpair_dns_update_success", pair=PAIR_NAME)
        return master == {"lb1": 0, "lb2": 1} and counted == 1 and dns == 1 and samples

    samples = wait_until(shown, 30, interval=0.5, what="the metrics file showing lb2 MASTER and one failover")
    assert _value(samples, "lbpair_failovers_total", pair=PAIR_NAME, vrrp_instance=INSTANCE, kind="planned") == 0
    assert _value(samples, "lbpair_unconfirmed_claims", pair=PAIR_NAME) == 0
    assert _value(samples, "lbpair_reaction_step_failures_total", pair=PAIR_NAME, step="webhook") == 0
    assert _value(samples, "lbpair_reaction_latency_seconds_count", pair=PAIR_NAME) == 1
    assert _value(samples, "lbpair_reaction_latency_seconds_bucket", pair=PAIR_NAME, le="30") == 1  # done within 30 s
    assert _value(samples, "lbpair_master_metrics_written_timestamp_seconds") > 0
    if shutil.which("promtool"):
        checked = subprocess.run(["promtool", "check", "metrics"], input=path.read_text(), capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr
