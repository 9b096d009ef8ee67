"""
The master's metrics file (``lbpair_master.prom``) without Salt: reactions to failovers made with
the library's own functions, ``ask`` answering as the nodes would, a real TSIG-checking DNS
server on loopback (dnspython) and a closed port for the webhook (a real failure). The file is
read back with prometheus_client's parser, and checked by ``promtool check metrics`` when it is there.
"""

import logging
import shutil
import socket
import socketserver
import struct
import subprocess
import threading

import dns.message
import dns.rcode
import dns.tsigkeyring
import pytest
from prometheus_client.parser import text_string_to_metric_families

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.core.times import iso_utc
from saltext.lbpair.master import history_index, metrics, reaction_tables, reactions, reactions_config
from saltext.lbpair.master.history import History
from saltext.lbpair.master.metrics import Facts
from saltext.lbpair.master.reaction_state import ReactionStore
from tests.unit.clock import Clock

INSTANCE = "lbpair_51"
PAIR = "lb1+lb2"  # the name of the pair lbpair_reactions:nodes lists
KEY_NAME, KEY_SECRET = "lbpair-update", "c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Q="
HOSTILE = ('we"b\nlbpair_up{pair="x"} 1', "lb\\1 \"MASTER\"\n# TYPE x counter", 'inst}"\\\n')


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DnsServer(socketserver.ThreadingTCPServer):
    """A DNS server on loopback that checks the update's TSIG signature and answers with the next of ``rcodes``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, rcodes):
        self.rcodes = list(rcodes)
        self.keyring = dns.tsigkeyring.from_text({KEY_NAME: KEY_SECRET})
        super().__init__(("127.0.0.1", 0), _DnsHandler)


class _DnsHandler(socketserver.BaseRequestHandler):
    def handle(self):
        size = struct.unpack("!H", self.request.recv(2))[0]
        wire = b""
        while len(wire) < size:
            wire += self.request.recv(size - len(wire))
        query = dns.message.from_wire(wire, keyring=self.server.keyring)  # raises on a bad signature: no answer
        response = dns.message.make_response(query)
        response.set_rcode(self.server.rcodes.pop(0))
        answer = response.to_wire()
        self.request.sendall(struct.pack("!H", len(answer)) + answer)


@pytest.fixture
def named():
    server = DnsServer([dns.rcode.REFUSED, dns.rcode.NOERROR])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class Nodes:
    """What the nodes answer: their journals and their status."""

    def __init__(self):
        self.journals = {"lb1": [], "lb2": []}
        self.states = {"lb1": "MASTER", "lb2": "BACKUP"}

    def ask(self, targets, fun, kwarg, timeout):
        answers = {}
        for node in targets:
            if fun == reactions.JOURNAL_FUNCTION:
                answers[node] = [e for e in self.journals[node] if e["seq"] > kwarg.get("since_of", {}).get(node, kwarg["since"])]
            elif fun == reactions.STATUS_FUNCTION:
                answers[node] = {INSTANCE: {"state": self.states[node], "vrid": 51, "vips": [], "source": "dbus"}}
        return answers, {}

    def transition(self, node, seq, state, previous, received_at):
        """``node`` journals a transition it received at ``received_at``; the beacon event's tag and data."""
        entry = {"seq": seq, "instance": INSTANCE, "state": state, "previous_state": previous, "vips": ["203.0.113.10"],
                 "received_at": iso_utc(received_at)}  # fmt: skip
        self.journals[node].append(entry)
        return f"salt/beacon/{node}/lbpair_vrrp/{INSTANCE}/{state}", {**entry, "id": node}


def _config(tmp_path, dns_port, **extra):
    return reactions_config.normalise(
        {
            "nodes": {"lb1": {"address": "192.0.2.11"}, "lb2": {"address": "192.0.2.12"}},
            "history": {"path": str(tmp_path / "history.jsonl")},
            "confirm": {"timeout": 1, "settle": 0.2},
            "metrics_file": str(tmp_path / "node-exporter" / "lbpair_master.prom"),
            "webhook": {"url": f"http://127.0.0.1:{_closed_port()}/hook"},
            "dns": {"server": "127.0.0.1", "port": dns_port, "zone": "pair.example", "key_name": KEY_NAME, "key_secret": KEY_SECRET,
                    "records": [{"name": "active", "type": "A"}], "attempts": 1, "timeout": 2},
            **extra,
        }
    )  # fmt: skip


def _samples(path):
    """``{(name, frozenset(labels)): value}`` of the metrics file, read by prometheus_client's parser."""
    text = open(path, encoding="utf-8").read()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }  # fmt: skip


def _value(samples, name, **labels):
    return samples[name, frozenset(labels.items())]


def _failovers_story(tmp_path, named):
    """
    lb2 takes over unplanned (its webhook fails, DNS is refused), then a planned move gives the VIPs
    back to lb1 (DNS answers): the reactions, their clock and the nodes.
    """
    clock, nodes = Clock(), Nodes()
    config = _config(tmp_path, named.server_address[1])
    (tmp_path / "node-exporter").mkdir()
    reacting = reactions.Reactions(config, nodes.ask, lambda: None, clock, clock.sleep)
    nodes.states = {"lb1": "BACKUP", "lb2": "MASTER"}
    reacting.on_beacon(*nodes.transition("lb1", 1, "BACKUP", "MASTER", clock() - 0.8))
    reacting.on_beacon(*nodes.transition("lb2", 1, "MASTER", "BACKUP", clock() - 0.7))
    reacting.store.plan({INSTANCE: "lb1"}, clock() + 30)
    nodes.states = {"lb1": "MASTER", "lb2": "BACKUP"}
    reacting.on_beacon(*nodes.transition("lb2", 2, "BACKUP", "MASTER", clock() - 0.4))
    reacting.on_beacon(*nodes.transition("lb1", 2, "MASTER", "BACKUP", clock() - 0.3))
    return reacting, clock, nodes


def test_the_file_tells_the_master_failovers_failed_steps_dns_and_latency(tmp_path, named):
    reacting, clock, _ = _failovers_story(tmp_path, named)
    reacting.flush()  # a round of the background work: the file is written
    samples = _samples(reacting.metrics.path)

    assert _value(samples, "lbpair_pair_master", pair=PAIR, vrrp_instance=INSTANCE, node="lb1") == 1
    assert _value(samples, "lbpair_pair_master", pair=PAIR, vrrp_instance=INSTANCE, node="lb2") == 0
    assert _value(samples, "lbpair_failovers_total", pair=PAIR, vrrp_instance=INSTANCE, kind="unplanned") == 1
    assert _value(samples, "lbpair_failovers_total", pair=PAIR, vrrp_instance=INSTANCE, kind="planned") == 1
    assert _value(samples, "lbpair_unconfirmed_claims", pair=PAIR) == 0
    # the first notice's webhook failed (a closed port), and the first MASTER's; flap damping held the others: nothing sent, nothing failed
    assert _value(samples, "lbpair_reaction_step_failures_total", pair=PAIR, step="webhook") == 2
    for step in ("record", "failback", "smtp", "pair"):  # every step is there from 0
        assert _value(samples, "lbpair_reaction_step_failures_total", pair=PAIR, step=step) == 0
    # DNS was refused for lb2, then accepted for lb1: the last update's result counts
    assert _value(samples, "lbpair_dns_update_success", pair=PAIR) == 1
    assert _value(samples, "lbpair_dns_update_timestamp_seconds", pair=PAIR) == pytest.approx(clock(), abs=0.01)
    # four live reactions done 0.8, 0.7, 0.4 and 0.3 s after their nodes received the transitions
    assert _value(samples, "lbpair_reaction_latency_seconds_bucket", pair=PAIR, le="0.25") == 0
    assert _value(samples, "lbpair_reaction_latency_seconds_bucket", pair=PAIR, le="0.5") == 2
    assert _value(samples, "lbpair_reaction_latency_seconds_bucket", pair=PAIR, le="1") == 4
    assert _value(samples, "lbpair_reaction_latency_seconds_bucket", pair=PAIR, le="+Inf") == 4
    assert _value(samples, "lbpair_reaction_latency_seconds_count", pair=PAIR) == 4
    assert _value(samples, "lbpair_reaction_latency_seconds_sum", pair=PAIR) == pytest.approx(2.2, abs=0.01)
    assert _value(samples, "lbpair_master_metrics_written_timestamp_seconds") == pytest.approx(clock(), abs=0.01)


def test_a_dns_failure_shows_until_an_update_succeeds(tmp_path, named):
    named.rcodes = [dns.rcode.REFUSED, dns.rcode.REFUSED]
    reacting, _, _ = _failovers_story(tmp_path, named)
    reacting.flush()
    assert _value(_samples(reacting.metrics.path), "lbpair_dns_update_success", pair=PAIR) == 0
    named.rcodes = [dns.rcode.NOERROR]
    reacting.dns_update("lb1")  # the operator's salt-run lbpair.dns_update lb1
    reacting.metrics.after_round([{"dns": "done"}])
    assert _value(_samples(reacting.metrics.path), "lbpair_dns_update_success", pair=PAIR) == 1


def test_the_counts_survive_a_new_worker_and_a_rebuilt_index(tmp_path, named):
    reacting, clock, nodes = _failovers_story(tmp_path, named)
    reacting.flush()
    before = _samples(reacting.metrics.path)
    history_index.remove(reacting.history.index_path)  # a reboot: the index is built again from the files
    worker = reactions.Reactions(reacting.config, nodes.ask, lambda: None, clock, clock.sleep)  # a restarted worker
    worker.flush()
    after = _samples(worker.metrics.path)
    assert {key: value for key, value in after.items() if key[0] != "lbpair_master_metrics_written_timestamp_seconds"} == {
        key: value for key, value in before.items() if key[0] != "lbpair_master_metrics_written_timestamp_seconds"
    }


def test_an_old_transition_caught_up_late_does_not_make_its_node_master_again(tmp_path, named):
    reacting, clock, nodes = _failovers_story(tmp_path, named)
    # lb2 journalled a transition into MASTER long ago that the master never heard of (seq 3: newer by seq, older by time)
    nodes.transition("lb2", 3, "MASTER", "BACKUP", clock() - 3600)
    reacting.catch_up("lb2")
    reacting.flush()
    samples = _samples(reacting.metrics.path)
    assert _value(samples, "lbpair_pair_master", pair=PAIR, vrrp_instance=INSTANCE, node="lb1") == 1
    assert _value(samples, "lbpair_pair_master", pair=PAIR, vrrp_instance=INSTANCE, node="lb2") == 0
    assert _value(samples, "lbpair_failovers_total", pair=PAIR, vrrp_instance=INSTANCE, kind="unplanned") == 2  # it happened
    assert _value(samples, "lbpair_reaction_latency_seconds_count", pair=PAIR) == 4  # a late one measures no reaction


def test_unconfirmed_claims_are_counted_per_pair(tmp_path, named):
    reacting, _, nodes = _failovers_story(tmp_path, named)
    nodes.ask = None
    reacting.ask = lambda targets, fun, kwarg, timeout: ({}, {})  # the nodes do not answer
    reacting.on_beacon(f"salt/beacon/lb2/lbpair_vrrp/{INSTANCE}/MASTER",
                       {"seq": 9, "instance": INSTANCE, "state": "MASTER", "previous_state": "BACKUP", "vips": [], "id": "lb2"})  # fmt: skip
    reacting.flush()
    assert _value(_samples(reacting.metrics.path), "lbpair_unconfirmed_claims", pair=PAIR) == 1


def test_the_file_is_written_after_a_round_that_did_something_and_every_minute_when_idle(tmp_path, named):
    reacting, clock, _ = _failovers_story(tmp_path, named)
    path = reacting.metrics.path
    assert reacting.metrics.after_round([]) and open(path).read()
    open(path, "w").close()
    assert not reacting.metrics.after_round([])  # idle: not again within the minute
    assert reacting.metrics.after_round([{"summary": "sent"}]) and open(path).read()
    open(path, "w").close()
    clock.sleep(metrics.IDLE_WRITE)
    assert reacting.metrics.after_round([]) and open(path).read()


def test_a_failing_write_is_logged_once_and_never_stops_the_reactions(tmp_path, named, caplog):
    reacting, clock, nodes = _failovers_story(tmp_path, named)
    shutil.rmtree(tmp_path / "node-exporter")
    (tmp_path / "node-exporter").write_text("a file where the folder should be")
    caplog.set_level(logging.ERROR, "saltext.lbpair.master.metrics")
    for seq in (3, 4):
        clock.sleep(metrics.IDLE_WRITE)
        outcome = reacting.on_beacon(*nodes.transition("lb2", seq, "BACKUP", "BACKUP", clock()))
        assert outcome["recorded"]["seq"] == seq
        reacting.flush()  # a round: the summary of the transitions flap damping held, then the file
        assert not reacting.metrics.after_round([{"x": 1}])
    assert len([r for r in caplog.records if "metrics file" in r.getMessage()]) == 1
    (tmp_path / "node-exporter").unlink()
    (tmp_path / "node-exporter").mkdir()
    assert reacting.metrics.after_round([{"x": 1}])  # written again once it can be


def _hostile_facts():
    pair, node, instance = HOSTILE
    return Facts(
        pairs={pair: [node, "lb2"]},
        failovers={(pair, node, instance, False): 2, (pair, node, instance, True): 1},
        masters={(pair, instance): node},
        tallies={pair: {"step_failures:webhook": 1, "dns_ok": 0, "dns_at": 1_700_000_000.5, "latency_le:1": 1, "latency_sum": 0.6,
                        "latency_count": 1}},
        claims={node: [{"seq": 1}], "stranger": [{"seq": 2}]},
    )  # fmt: skip


def test_hostile_pair_instance_and_node_names_stay_one_label_value(tmp_path):
    pair, node, instance = HOSTILE
    text = metrics.text(_hostile_facts(), 1_700_000_001)
    path = tmp_path / "lbpair_master.prom"
    path.write_text(text)
    samples = _samples(path)
    assert _value(samples, "lbpair_pair_master", pair=pair, vrrp_instance=instance, node=node) == 1
    assert _value(samples, "lbpair_pair_master", pair=pair, vrrp_instance=instance, node="lb2") == 0
    assert _value(samples, "lbpair_failovers_total", pair=pair, vrrp_instance=instance, kind="planned") == 1
    assert _value(samples, "lbpair_unconfirmed_claims", pair=pair) == 1  # a minion of no pair counts for none
    assert not any(name == "lbpair_up" for name, _ in samples)  # no line of its own
    assert all(line.startswith(("# HELP lbpair_", "# TYPE lbpair_", "lbpair_")) for line in text.splitlines())


def test_the_instances_of_a_pair_are_bounded():
    facts = Facts({"web": ["lb1", "lb2"]}, {("web", "lb1", f"lbpair_{n}", False): 1 for n in range(200)}, {}, {}, {})
    assert len(facts.instances()["web"]) == metrics.MAX_INSTANCES


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool is not installed")
@pytest.mark.parametrize("story", ["failovers", "hostile", "empty"])
def test_promtool_accepts_the_file(tmp_path, named, story):
    if story == "failovers":
        reacting, _, _ = _failovers_story(tmp_path, named)
        reacting.flush()
        text = open(reacting.metrics.path, encoding="utf-8").read()
    else:
        text = metrics.text(_hostile_facts() if story == "hostile" else Facts({}, {}, {}, {}, {}), 1_700_000_001)
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_metrics_file_is_configured_in_the_reactions_block(tmp_path, node_exporter_folder):
    base = {"history": {"path": str(tmp_path / "history.jsonl")}}
    assert reactions_config.normalise(base)["metrics_file"] == str(node_exporter_folder / "lbpair_master.prom")  # its folder exists
    for off in ("none", "None", None):
        assert reactions_config.normalise({**base, "metrics_file": off})["metrics_file"] is None
    assert reactions_config.normalise({**base, "metrics_file": "/srv/m/lbpair_master.prom"})["metrics_file"] == "/srv/m/lbpair_master.prom"
    for wrong in ("relative.prom", "/srv/m/lbpair_master.txt", "/srv/m/\n.prom", 5):
        with pytest.raises(InvalidValue, match="lbpair_reactions:metrics_file"):
            reactions_config.normalise({**base, "metrics_file": wrong})


def test_without_node_exporter_the_metrics_are_off(tmp_path, monkeypatch):
    monkeypatch.setattr(reactions_config, "DEFAULT_METRICS_FILE", str(tmp_path / "missing" / "lbpair_master.prom"))
    assert reactions_config.normalise({"history": {"path": str(tmp_path / "history.jsonl")}})["metrics_file"] is None


def test_odd_transition_lines_in_the_history_count_for_nothing_they_do_not_say(tmp_path):
    history = tmp_path / "history.jsonl"
    lines = [
        '{"kind": "transition", "minion": "lb1", "seq": 1, "instance": {"x": 1}, "state": "MASTER", "confirmed": true}',
        '{"kind": "transition", "minion": "lb1", "seq": 2, "instance": "lbpair_51", "state": "MASTER", "at": [1], "pair": 7}',
        '{"kind": "transition", "minion": "lb2", "seq": 3, "instance": "lbpair_51", "state": "MASTER", "at": "yesterday", "pair": "web"}',
        '{"kind": "transition", "minion": "lb2", "seq": 4, "instance": "lbpair_51", "state": "MASTER", "confirmed": false, "pair": "web"}',
        '{"kind": "transition", "minion": "lb1", "seq": 5, "instance": "lbpair_51", "state": "MASTER", "at": "2026-12-07T10:00:00+00:00",'
        ' "pair": "web", "planned": "yes"}',
    ]
    history.write_text("\n".join(lines) + "\n")
    failovers, masters = History(str(history)).tallies()
    assert not (tmp_path / "history.jsonl.index").exists()  # a reader makes no index: the first append does
    assert failovers == {("", "lb1", "lbpair_51", False): 1, ("web", "lb2", "lbpair_51", False): 1, ("web", "lb1", "lbpair_51", True): 1}
    assert masters == {("web", "lbpair_51"): "lb1"}  # only a transition with a time decides who is MASTER


def test_the_tallies_of_the_reaction_state_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(reaction_tables, "MAX_TALLIES", 10)
    store = ReactionStore(str(tmp_path / "history.jsonl.state.json"))
    for number in range(20):
        store.count_step_failure(f"pair{number}", "webhook")
    store.count_step_failure("pair0", "webhook")  # gone: counted afresh, as the newest
    tallies = store.tallies()
    assert sum(len(names) for names in tallies.values()) == 10
    assert "pair19" in tallies and tallies["pair0"] == {"step_failures:webhook": 1} and "pair1" not in tallies


def test_a_write_the_disk_refuses_leaves_no_temporary_file_behind(tmp_path, file_size_limit):
    folder = tmp_path / "node-exporter"
    folder.mkdir()
    written = metrics.MetricsFile(str(folder / "lbpair_master.prom"), _hostile_facts)
    assert written.write(1_700_000_000)
    before = (folder / "lbpair_master.prom").read_text()
    file_size_limit(100)  # as a full disk refuses a write (EFBIG here, ENOSPC there)
    assert not written.write(1_700_000_060)
    file_size_limit(-1)
    assert [path.name for path in folder.iterdir()] == ["lbpair_master.prom"]
    assert (folder / "lbpair_master.prom").read_text() == before  # the collector still reads the last whole file
