"""
lbpair's Prometheus alert rules (salt/prometheus/lbpair.rules.yml): promtool checks and unit-tests them
(tests/prometheus/lbpair.rules.test.yml), every alert reads only metrics of the contract the beacon and the
master write, and every alert has a test case where it fires and one where it does not.
"""

import configparser
import fnmatch
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

RULES = REPO / "salt" / "prometheus" / "lbpair.rules.yml"
RULE_TESTS = REPO / "tests" / "prometheus" / "lbpair.rules.test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus) is not installed")

#: the metric names of the contract (METRICS-CONTRACT.md): the node's lbpair.prom, then the master's lbpair_master.prom
CONTRACT_METRICS = {
    "lbpair_vrrp_state_master": "gauge",
    "lbpair_vrrp_state_backup": "gauge",
    "lbpair_vrrp_state_fault": "gauge",
    "lbpair_vrrp_state_init": "gauge",
    "lbpair_vrrp_state_stop": "gauge",
    "lbpair_vrrp_state_unknown": "gauge",
    "lbpair_vrrp_transitions_total": "counter",
    "lbpair_vrrp_last_transition_timestamp_seconds": "gauge",
    "lbpair_vrrp_effective_priority": "gauge",
    "lbpair_beacon_dbus": "gauge",
    "lbpair_keepalived_up": "gauge",
    "lbpair_haproxy_up": "gauge",
    "lbpair_track_file_set": "gauge",
    "lbpair_rogue_vrrp_senders": "gauge",
    "lbpair_certificate_expiry_timestamp_seconds": "gauge",
    "lbpair_metrics_written_timestamp_seconds": "gauge",
    "lbpair_pair_master": "gauge",
    "lbpair_failovers_total": "counter",
    "lbpair_unconfirmed_claims": "gauge",
    "lbpair_reaction_step_failures_total": "counter",
    "lbpair_dns_update_success": "gauge",
    "lbpair_dns_update_timestamp_seconds": "gauge",
    "lbpair_reaction_latency_seconds": "histogram",
    "lbpair_master_metrics_written_timestamp_seconds": "gauge",
}
#: the names a query may use: a histogram is read through its series
QUERYABLE = {
    f"{name}{suffix}"
    for name, kind in CONTRACT_METRICS.items()
    for suffix in (("_bucket", "_sum", "_count") if kind == "histogram" else ("",))
}
#: the alerts of the contract
CONTRACT_ALERTS = {
    "LbpairSplitBrain",
    "LbpairNoMaster",
    "LbpairNodeFault",
    "LbpairBeaconNotOnDbus",
    "LbpairRogueVrrp",
    "LbpairCertificateExpiring",
    "LbpairReactionStepsFailing",
    "LbpairFlapping",
    "LbpairKeepalivedDown",
    "LbpairHaproxyDown",
    "LbpairMetricsStale",
}

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^{}]*\}")
NAME_MATCHER = re.compile(r"__name__\s*(=~|!=|!~|=)\s*\x00(\d+)\x00")
RANGE = re.compile(r"\[[^\[\]]*\]")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"}


def metric_names(expr):
    """
    The metric names a PromQL expression reads: identifiers that are not functions, keywords, label names,
    durations or strings. A ``__name__`` matcher gives its value for ``=``, and the matcher itself otherwise
    (a pattern is never a contract name).
    """
    strings = []

    def hide(match):
        strings.append(match.group(0))
        return f"\x00{len(strings) - 1}\x00"

    text = STRING.sub(hide, expr)
    names = set()
    for block in MATCHERS.findall(text):
        for op, index in NAME_MATCHER.findall(block):
            value = strings[int(index)][1:-1]  # escapes kept: a contract name has none
            names.add(value if op == "=" else f"__name__{op}{value}")
    text = GROUPING.sub(" ", RANGE.sub(" ", MATCHERS.sub(" ", text)))
    for identifier, call in IDENTIFIER.findall(text):
        if not call and identifier.lower() not in KEYWORDS:
            names.add(identifier)
    return names


def load(path):
    return yaml.safe_load(path.read_text())


def rules():
    (group,) = load(RULES)["groups"]
    return group["rules"]


def alerts():
    return sorted({rule["alert"] for rule in rules()})


def rules_of(name):
    return [rule for rule in rules() if rule["alert"] == name]


def promtool(*args):
    return subprocess.run([PROMTOOL, *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)


@needs_promtool
def test_promtool_checks_the_rules():
    checked = promtool("check", "rules", str(RULES.relative_to(REPO)))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


@needs_promtool
def test_promtools_unit_tests_of_the_rules_pass():
    tested = promtool("test", "rules", str(RULE_TESTS.relative_to(REPO)))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_rules_are_one_group_named_lbpair_with_the_contracts_alerts():
    (group,) = load(RULES)["groups"]
    assert group["name"] == "lbpair"
    assert set(alerts()) == CONTRACT_ALERTS
    assert all(set(rule) <= {"alert", "expr", "for", "labels", "annotations"} for rule in group["rules"])


@pytest.mark.parametrize("name", sorted(CONTRACT_ALERTS))
def test_an_alert_reads_only_the_contracts_metrics(name):
    for rule in rules_of(name):
        used = metric_names(rule["expr"])
        assert used, rule["expr"]
        assert used <= QUERYABLE, f"{name} reads {sorted(used - QUERYABLE)}, not in the contract"


@pytest.mark.parametrize("name", sorted(CONTRACT_ALERTS))
def test_an_alert_has_a_severity_a_summary_and_a_description_naming_its_pair(name):
    for rule in rules_of(name):
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert set(rule["annotations"]) == {"summary", "description"}
        assert all("{{ $labels.pair }}" in text for text in rule["annotations"].values())


@pytest.mark.parametrize("name", sorted(CONTRACT_ALERTS))
def test_an_alert_has_a_test_where_it_fires_and_one_where_it_does_not(name):
    cases = [case for group in load(RULE_TESTS)["tests"] for case in group.get("alert_rule_test", []) if case["alertname"] == name]
    assert any(case["exp_alerts"] for case in cases), f"no test where {name} fires"
    assert any(not case["exp_alerts"] for case in cases), f"no test where {name} stays quiet"


def test_the_rule_tests_load_the_shipped_rules():
    assert [(RULE_TESTS.parent / path).resolve() for path in load(RULE_TESTS)["rule_files"]] == [RULES]


def test_split_brain_fires_within_ten_seconds():
    """The lab cuts VRRP and waits for this alert through Prometheus' HTTP API."""
    (rule,) = rules_of("LbpairSplitBrain")
    assert rule["for"] == "10s" and rule["labels"]["severity"] == "critical"


def test_the_package_ships_the_rules_with_the_state_tree():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    assert setup["options"]["package_dir"].split().count("salt")  # the state tree is the salt/ folder
    patterns = setup["options.package_data"]["saltext.lbpair.state_tree"].replace(",", " ").split()
    assert any(fnmatch.fnmatch(str(RULES.relative_to(REPO / "salt")), pattern) for pattern in patterns)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (pair, vrrp_instance) (lbpair_vrrp_state_master) > 1", {"lbpair_vrrp_state_master"}),
        ('round(increase(lbpair_vrrp_transitions_total{state="MASTER"}[15m])) > 3', {"lbpair_vrrp_transitions_total"}),
        ("lbpair_certificate_expiry_timestamp_seconds - time() < 14 * 86400", {"lbpair_certificate_expiry_timestamp_seconds"}),
        ("histogram_quantile(0.9, sum by (le) (rate(lbpair_reaction_latency_seconds_bucket[5m])))", {"lbpair_reaction_latency_seconds_bucket"}),
        ("a and on (pair, node) b or ignoring(x) group_left(y) c unless bool d offset 5m", {"a", "b", "c", "d"}),
        ("max_over_time(lbpair_haproxy_up[1h:5m]) == 0 or vector(1e3) > 0x1f", {"lbpair_haproxy_up"}),
        # hostile: names hidden in strings and label values, a name chosen by matcher, a near miss
        ('lbpair_track_file_set{file="lbpair_fake_metric}", node!~"x\\"y"}', {"lbpair_track_file_set"}),
        ('label_replace(lbpair_haproxy_up, "node", "evil_metric", "", "")', {"lbpair_haproxy_up"}),
        ('{__name__="node_load1", pair="web"} > 1', {"node_load1"}),
        ('{__name__=~"lbpair_.+"} > 1', {"__name__=~lbpair_.+"}),
        ("lbpair_vrrp_state_masters > 1", {"lbpair_vrrp_state_masters"}),
    ],
)
def test_metric_names_are_read_from_an_expression(expr, names):
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    "expr", ["lbpair_vrrp_state_masters > 1", '{__name__=~"lbpair_.+"} > 1', "up == 0", "lbpair_reaction_latency_seconds > 1"]
)
def test_a_name_outside_the_contract_is_caught(expr):
    assert not metric_names(expr) <= QUERYABLE
