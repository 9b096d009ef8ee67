"""
Draining a server across the pair on the whole lab: ``lbpair.drain`` under client load fails no
request, waits for a session under way to end (a request whose body the client holds back, so
HAProxy keeps it on the server), leaves the server drained on both nodes, ``lbpair.ready`` puts
it back, and the history holds both. Names the pillar does not define are refused.
"""

import subprocess
import sys
import threading
import time

import pytest

from lab.demo import history_records
from lab.load import ClientLoad
from lab.salt_master import seed_pillar
from lab.util import wait_until
from saltext.lbpair.core.times import iso_utc
from tests.integration.pair.conftest import NODES, wait_for_vips

FOO_VIP = seed_pillar()["services"]["foo"]["vip"]
MIN_REQUESTS = 300
#: a request to foo1 (its persistence cookie) whose chunked body never comes: HAProxy holds the
#: session on foo1 (``scur`` 1) until the client closes, however fast foo1 answers
HOLD = """
import socket, sys
connection = socket.create_connection((sys.argv[1], 80), timeout=10)
connection.sendall(b"GET / HTTP/1.1\\r\\nHost: foo\\r\\nCookie: foo-server-id=foo1\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n")
print("held", flush=True)
sys.stdin.readline()
connection.close()
"""


@pytest.fixture(scope="module")
def salt_run(salt_master):
    return salt_master.salt_run_cli(timeout=180)


@pytest.fixture
def foo1_back(lab, highstated, salt_run):
    """Each test starts with lb1 MASTER and ends with foo1 ready on both nodes."""
    wait_for_vips(lab, "lb1")
    yield
    salt_run.run("lbpair.ready", "foo", "foo1")


def _foo1(salt_cli, node):
    """foo1's runtime state on ``node`` (``status``, ``scur``...), from its stats socket."""
    return salt_cli.run("lbpair_haproxy.servers", "foo", minion_tgt=node, _timeout=30).data["foo1"]


def test_a_drain_under_load_waits_for_the_sessions_and_fails_no_request(lab, foo1_back, salt_run, salt_cli, history_path):
    since = time.time()
    load = ClientLoad(lab, [f"http://{FOO_VIP}/"])
    held = lab.popen("client", [sys.executable, "-c", HOLD, FOO_VIP], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "held"
        wait_until(lambda: int(_foo1(salt_cli, "lb1")["scur"]) >= 1, 15, what="the held session on lb1")
        short = salt_run.run("lbpair.drain", "foo", "foo1", "timeout=2")
        assert short.returncode == 1 and short.data["drained"] is False and short.data["retcode"] == 1, short.stdout + short.stderr
        assert short.data["sessions_left"] >= 1 and short.data["order"] == ["lb1", "lb2"] and short.data["waited"] >= 2
        threading.Timer(4, held.stdin.close).start()  # the client gives up its request during the next drain
        drained = salt_run.run("lbpair.drain", "foo", "foo1", "timeout=30")
        assert drained.returncode == 0 and drained.data["drained"] is True, drained.stdout + drained.stderr
        assert drained.data["sessions_left"] == 0 and 1 <= drained.data["waited"] < 30  # salt-run takes a second or two to start
        assert {node: entry["sessions"] for node, entry in drained.data["nodes"].items()} == {"lb1": 0, "lb2": 0}
        for node in NODES:
            assert _foo1(salt_cli, node)["status"] == "DRAIN"
        time.sleep(2)  # the load goes on with foo1 drained
        ready = salt_run.run("lbpair.ready", "foo", "foo1")
        assert ready.returncode == 0 and ready.data["order"] == ["lb1", "lb2"], ready.stdout + ready.stderr
        for node in NODES:
            assert _foo1(salt_cli, node)["status"] == "UP"
        wait_until(lambda: load.counts()["requests"] >= MIN_REQUESTS, 60, what=f"{MIN_REQUESTS} requests")
        time.sleep(2.1)  # the last requests end (2 s timeout)
    finally:
        counts = load.stop()
        held.kill()
        held.wait(timeout=10)
    assert counts["requests"] >= MIN_REQUESTS and counts["failures"] == 0, counts
    kept = [r for r in history_records(history_path) if r.get("kind") in ("drain", "ready") and r["at"] >= iso_utc(since)]
    assert [(r["kind"], r["service"], r["server"], r["pair"], r["nodes"]) for r in kept] == [
        ("drain", "foo", "foo1", "lb1+lb2", ["lb1", "lb2"]),
        ("drain", "foo", "foo1", "lb1+lb2", ["lb1", "lb2"]),
        ("ready", "foo", "foo1", "lb1+lb2", ["lb1", "lb2"]),
    ]
    assert (kept[0]["drained"], kept[1]["drained"]) == (False, True) and kept[0]["sessions_left"] >= 1
    shown = salt_run.run("lbpair.history", f"since={since}")
    assert [r["kind"] for r in shown.data if r["kind"] in ("drain", "ready")] == ["drain", "drain", "ready"], shown.stdout


@pytest.mark.parametrize(("service", "server", "which"), [("foo;shutdown", "foo1", "service"), ("nope", "foo1", "service"),
                                                          ("foo", "../x", "server"), ("foo", "bar1", "server")])  # fmt: skip
def test_names_the_pillar_does_not_define_are_refused_and_nothing_changes(foo1_back, salt_run, salt_cli, service, server, which):
    refused = salt_run.run("lbpair.drain", service, server)
    assert f"Passed invalid arguments: {which}: " in refused.stdout and refused.data is None, refused.stdout + refused.stderr
    for node in NODES:
        assert _foo1(salt_cli, node)["status"] == "UP"
