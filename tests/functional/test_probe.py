"""
The probe keepalived runs (``haproxy_watch.probe_script``) against a real HAProxy in a throwaway
network namespace: it passes while HAProxy answers, fails within 0.5 s when HAProxy hangs, rides
out a crash healed within its grace (no HAProxy there is asked again) and fails when HAProxy stays
gone, before keepalived's timeout for it.
"""

import signal
import subprocess
import threading
import time

import pytest

from lab import netns
from lab.util import stop_process, wait_until
from saltext.lbpair.node import haproxy, haproxy_watch
from tests.functional.rigs import node_model, shop_pillar
from tests.unit.test_routing import SHOP

NAMESPACE = "lbpair-probed"
TIMEOUT = 3  # keepalived's timeout for the probe (the default)


class ProbedHAProxy:
    """HAProxy with the shop and the probe frontend, and the probe script rendered for it."""

    def __init__(self, config, script):
        self.config, self.script, self.process = config, script, None

    def start(self):
        self.process = netns.popen(NAMESPACE, ["haproxy", "-f", str(self.config)], stderr=subprocess.DEVNULL)
        wait_until(lambda: self.probe()[0] == 0, 10, what="HAProxy answering the probe")

    def kill(self):
        self.process.kill()
        self.process.wait()

    def probe(self):
        """The probe's exit status and how long it took (s)."""
        started = time.monotonic()
        status = netns.run(NAMESPACE, ["sh", str(self.script)], check=False, timeout=TIMEOUT + 5).returncode
        return status, time.monotonic() - started


@pytest.fixture
def probed(tmp_path, seed_pillar):
    lbpair = shop_pillar(seed_pillar, str(tmp_path / "admin.sock"))
    lbpair["vrrp"]["probe"] = {"timeout": TIMEOUT}
    model = node_model(lbpair, "lb1")
    config, script = tmp_path / "haproxy.cfg", tmp_path / "haproxy-alive"
    config.write_text(haproxy.render_config(model))
    script.write_text(haproxy_watch.probe_script(model))
    with netns.temporary(NAMESPACE):
        netns.add_address(NAMESPACE, "lo", f"{SHOP['vip']}/32")
        target = ProbedHAProxy(config, script)
        target.start()
        try:
            yield target
        finally:
            stop_process(target.process)


def test_a_haproxy_that_answers_passes_at_once(probed):
    status, took = probed.probe()
    assert status == 0 and took < 0.5


def test_a_hung_haproxy_fails_within_the_probe_s_answer_time(probed):
    probed.process.send_signal(signal.SIGSTOP)
    try:
        status, took = probed.probe()
    finally:
        probed.process.send_signal(signal.SIGCONT)
    assert status == 1 and haproxy_watch.PROBE_MAX_TIME <= took < haproxy_watch.PROBE_MAX_TIME + 0.5


def test_a_crash_healed_within_the_grace_passes(probed):
    probed.kill()
    restart = threading.Timer(1.0, probed.start)  # systemd takes 0.2-0.5 s on the lab
    restart.start()
    try:
        status, took = probed.probe()
    finally:
        restart.join()
    assert status == 0 and 1.0 <= took < TIMEOUT


def test_a_haproxy_that_stays_gone_fails_before_keepalived_s_timeout(probed):
    probed.kill()
    status, took = probed.probe()
    assert status == 1 and TIMEOUT - 1 <= took < TIMEOUT


def test_a_haproxy_killed_while_it_answered_is_asked_again(probed):
    probed.process.send_signal(signal.SIGSTOP)  # the probe's connection waits in HAProxy's queue ...
    crash = threading.Timer(0.2, probed.kill)  # ... and is reset
    restart = threading.Timer(1.0, probed.start)
    crash.start()
    restart.start()
    try:
        status, took = probed.probe()
    finally:
        crash.join()
        restart.join()
    assert status == 0 and 1.0 <= took < TIMEOUT
