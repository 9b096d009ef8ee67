"""Prometheus' text format: what node_exporter's textfile collector and promtool read."""

import os
import shutil
import subprocess

import pytest

from saltext.lbpair.core.prometheus_text import Family, Sample, escape_label_value, histogram, publish, render

HOSTILE_LABEL_VALUES = [
    'a"b',
    "a\\b",
    "line\nlbpair_haproxy_up 1",
    "} 1\nlbpair_fake 1",
    "é✓",
]


def test_a_family_has_help_type_and_its_samples():
    text = render([Family("lbpair_haproxy_up", "gauge", "HAProxy answers.", [Sample({"pair": "web", "node": "lb1"}, 1)])])
    assert text == (
        "# HELP lbpair_haproxy_up HAProxy answers.\n# TYPE lbpair_haproxy_up gauge\n"
        'lbpair_haproxy_up{pair="web",node="lb1"} 1\n'
    )


@pytest.mark.parametrize("value", HOSTILE_LABEL_VALUES)
def test_a_hostile_label_value_stays_one_label_value(value):
    text = render([Family("lbpair_x", "gauge", "x", [Sample({"certificate": value}, 1)])])
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples == [f'lbpair_x{{certificate="{escape_label_value(value)}"}} 1']


@pytest.mark.parametrize("name", ["0bad", "bad-name", "bad name", "__name__", "le\n"])
def test_a_bad_label_name_is_refused(name):
    with pytest.raises(ValueError):
        render([Family("lbpair_x", "gauge", "x", [Sample({name: "v"}, 1)])])


def test_a_family_twice_is_refused():
    with pytest.raises(ValueError):
        render([Family("lbpair_x", "gauge", "x"), Family("lbpair_x", "gauge", "x")])


def test_a_histogram_has_cumulative_buckets_a_sum_and_a_count():
    samples = histogram({"pair": "web"}, [0.2, 0.7, 3.0], [0.5, 1])
    lines = render([Family("lbpair_latency_seconds", "histogram", "h", samples)]).splitlines()[2:]
    assert lines == [
        'lbpair_latency_seconds_bucket{pair="web",le="0.5"} 1',
        'lbpair_latency_seconds_bucket{pair="web",le="1"} 2',
        'lbpair_latency_seconds_bucket{pair="web",le="+Inf"} 3',
        'lbpair_latency_seconds_sum{pair="web"} 3.9',
        'lbpair_latency_seconds_count{pair="web"} 3',
    ]


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian's prometheus) is not installed")
def test_promtool_reads_what_is_published_hostile_values_included(tmp_path):
    samples = [Sample({"certificate": value}, index) for index, value in enumerate(HOSTILE_LABEL_VALUES)]
    families = [
        Family("lbpair_certificate_expiry_timestamp_seconds", "gauge", "When a certificate expires.", samples),
        Family("lbpair_latency_seconds", "histogram", "Latency.", histogram({}, [0.1], [0.5])),
    ]
    path = tmp_path / "lbpair.prom"
    publish(str(path), render(families))
    assert os.listdir(tmp_path) == ["lbpair.prom"]
    checked = subprocess.run(["promtool", "check", "metrics"], input=path.read_text(), capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
