"""Tests of the lab harness: namespaces, the cached root, nspawn machines and the seed network.

Run with ``.venv/bin/python -m pytest tests/integration/lab -x -q`` as root. The first run builds the
cached root (a few minutes); later runs boot two machines in seconds.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lab import machine, netns, rootfs
from lab.salt_master import REPO
from lab.topology import SEED, SWITCH, Lab, seed_host

pytestmark = pytest.mark.lab

BOOTED = ("lb1", "lb2", "foo1", "foo2", "client")
VIP = "203.0.113.10"


def lab_leftovers(names):
    """Return what is left of a lab with host *names*: namespaces, mounts, nspawn, dirs, cgroups.

    Looks only at this lab's names: other labs (other test suites) may run at the same time.
    """
    namespaces = [f"lbpair-{n}" for n in names] + [SWITCH]
    left = [ns for ns in namespaces if netns.exists(ns)]
    mounts = Path("/proc/self/mountinfo").read_text()
    left += [f"mount {n}" for n in names if f"{machine.RUN_DIR / n}/" in mounts]
    left += [f"nspawn {n}" for n in names if machine.nspawn_pids(n)]
    left += [f"dir {n}" for n in names if (machine.RUN_DIR / n).exists()]
    cgroups = [
        base / machine.CGROUP_GROUP / n for base in machine._cgroup_hierarchies() for n in names
    ]
    return left + [f"cgroup {group}" for group in cgroups if group.exists()]


@pytest.fixture(scope="module")
def root():
    """The cached root, built here on first use so that boot timings below exclude it."""
    return rootfs.ensure()


@pytest.fixture(scope="class")
def lab(root):
    """lb1, lb2 booted as machines, foo1, foo2 as backends, a client; torn down after the class."""
    started = time.monotonic()
    with Lab(hosts=BOOTED) as booted:
        booted.boot_seconds = time.monotonic() - started
        yield booted


class TestBootedLab:
    """lb1 and lb2 booted as machines, foo1 and foo2 as HTTP backends, and the client."""

    @pytest.mark.parametrize("node", ["lb1", "lb2"])
    def test_systemd_is_pid_1_and_running(self, lab, node):
        assert lab.exec(node, ["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
        state = lab.exec(node, ["systemctl", "is-system-running"], check=False).stdout.strip()
        failed = lab.exec(node, ["systemctl", "--failed", "--no-legend"]).stdout
        assert state == "running", failed

    @pytest.mark.parametrize("node", ["lb1", "lb2"])
    def test_hostname_and_minion_config_are_the_nodes(self, lab, node):
        assert lab.exec(node, ["hostname"]).stdout.strip() == node
        config = lab.exec(node, ["cat", "/etc/salt/minion.d/lab.conf"]).stdout
        assert f"id: {node}\n" in config and "master: 192.0.2.5\n" in config

    def test_system_bus_answers(self, lab):
        assert lab.exec("lb1", ["busctl", "--system", "status"]).returncode == 0
        names = lab.exec("lb1", ["busctl", "--system", "list", "--no-legend"]).stdout
        assert "org.freedesktop.systemd1" in names

    def test_lb1_pings_lb2_over_eth0(self, lab):
        lab.exec("lb1", ["ping", "-c1", "-W2", "-I", "eth0", lab.address("lb2")])

    def test_lb1_fetches_a_backend(self, lab):
        body = lab.exec("lb1", ["curl", "-sS", "-m5", "http://198.51.100.11/"]).stdout
        assert body.strip() == "foo1"

    def test_client_reaches_an_address_a_machine_adds_on_eth0(self, lab):
        lab.exec("lb1", ["ip", "address", "add", f"{VIP}/24", "dev", "eth0"])  # CAP_NET_ADMIN
        try:
            server = ["python3", "-m", "http.server", "--bind", VIP, "8080"]
            lab.popen("lb1", server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            curl = ["curl", "-sS", "-m5", "--retry", "10", "--retry-connrefused", "-o/dev/null"]
            status = lab.exec("client", [*curl, "-w%{http_code}", f"http://{VIP}:8080/"]).stdout
            assert status == "200"
        finally:
            lab.exec("lb1", ["ip", "address", "del", f"{VIP}/24", "dev", "eth0"])

    def test_keepalived_and_haproxy_are_installed(self, lab):
        lab.exec("lb1", ["test", "-x", "/usr/sbin/keepalived"])
        lab.exec("lb1", ["test", "-x", "/usr/sbin/haproxy"])

    def test_haproxy_unit_runs_and_keepalived_waits_for_a_config(self, lab):
        assert lab.exec("lb1", ["systemctl", "is-active", "haproxy"]).stdout.strip() == "active"
        state = lab.exec("lb1", ["systemctl", "is-active", "keepalived"], check=False).stdout
        assert state.strip() == "inactive"  # ConditionFileNotEmpty=/etc/keepalived/keepalived.conf

    def test_salt_call_is_3008_4(self, lab):
        out = lab.exec("lb1", ["/opt/saltenv/bin/salt-call", "--version"]).stdout
        assert out.split()[:2] == ["salt-call", rootfs.SALT_VERSION]

    def test_salt_minion_runs_as_a_unit(self, lab):
        assert lab.exec("lb2", ["systemctl", "is-active", "salt-minion"]).stdout.strip() == "active"

    def test_machines_get_their_own_machine_id(self, lab):
        ids = {lab.exec(n, ["cat", "/etc/machine-id"]).stdout.strip() for n in ("lb1", "lb2")}
        assert len(ids) == 2 and all(len(i) == 32 for i in ids)

    def test_overlay_keeps_the_cached_root_untouched(self, lab, root):
        lab.exec("lb1", ["sh", "-c", "echo changed > /etc/lbpair-test"])
        assert not (root / "etc/lbpair-test").exists()

    def test_a_second_machine_of_the_same_name_fails_and_harms_nothing(self, lab):
        with pytest.raises(machine.MachineError, match="exists"):
            machine.Machine("lb1", "lbpair-lb1").boot()
        assert lab.exec("lb1", ["systemctl", "is-system-running"]).stdout.strip() == "running"

    def test_two_machines_boot_in_under_20_seconds(self, lab):
        assert lab.boot_seconds < 20


def test_booted_lab_leaves_nothing_behind():
    assert lab_leftovers(BOOTED) == []


def test_failed_boot_tears_everything_down(root):
    with pytest.raises(machine.MachineError, match="did not boot"), Lab(["lb1"], boot_timeout=0.2):
        pass
    assert lab_leftovers(["lb1"]) == []


def test_plain_namespaces_reach_each_other_through_the_switch():
    with Lab(hosts=["lb1", "bar2", "client"], machines=False) as lab:
        assert lab.machines == {}
        body = lab.exec("client", ["curl", "-sS", "-m5", "http://198.51.100.22/"]).stdout
        assert body == "bar2\n"
        routes = lab.exec("lb1", ["ip", "route"]).stdout
        assert "198.51.100.0/24 dev eth0" in routes and "203.0.113.0/24 dev eth0" in routes
    assert lab_leftovers(["lb1", "bar2", "client"]) == []


def test_a_second_lab_with_the_same_names_fails_and_harms_nothing():
    with Lab(hosts=["client"], machines=False) as first:
        second = Lab(hosts=["client"], machines=False)
        with pytest.raises(FileExistsError, match="lbpair-sw exists, made by a live process"):
            second.__enter__()
        assert first.exec("client", ["ip", "-br", "address", "show", "eth0"]).returncode == 0
    assert lab_leftovers(["client"]) == []


def test_enter_moves_the_process_into_a_namespace_and_back():
    outside = os.readlink("/proc/thread-self/ns/net")
    with Lab(hosts=["mgmt"], machines=False):
        with netns.enter(seed_host("mgmt").netns):
            inside = os.readlink("/proc/thread-self/ns/net")
            assert inside == os.readlink(f"/proc/{os.getpid()}/ns/net")
            assert "192.0.2.5" in os.popen("ip -br address show eth0").read()
        assert os.readlink("/proc/thread-self/ns/net") == outside
    assert inside != outside


def test_cleanup_stale_removes_namespaces_of_dead_owners_only():
    name = "lbpair-staletest"
    netns.add(name)
    try:
        (netns.OWNERS_DIR / name).write_text("999999999 1\n")  # a process that does not exist
        kept = "lbpair-livetest"
        netns.add(kept)
        assert netns.cleanup_stale() == [name]
        assert netns.exists(kept) and not netns.exists(name)
    finally:
        netns.delete(name)
        netns.delete("lbpair-livetest")


def test_veth_ends_never_appear_in_the_root_namespace():
    before = set(os.listdir("/sys/class/net"))
    with Lab(hosts=["foo1", "client"], machines=False):
        assert set(os.listdir("/sys/class/net")) == before
    assert set(os.listdir("/sys/class/net")) == before


def test_demo_interrupted_midway_leaves_nothing_behind(root):
    """Ctrl-C once the master, the services and the machines are up: all of it is removed."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "lab", "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, cwd=REPO,
    )  # fmt: skip
    seen = []
    try:
        for line in demo.stdout:
            seen.append(line)
            if line.startswith("[ 5]"):  # extension syncing: everything is up
                break
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        seen.append(demo.communicate(timeout=180)[0])
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    output = "".join(seen)
    assert "[ 5]" in output and demo.returncode == 130, output
    assert "everything it started is removed" in output
    assert lab_leftovers([host.name for host in SEED]) == []
    left = subprocess.run(["pgrep", "-af", "lbpair-demo-"], capture_output=True, text=True).stdout
    assert left == "", f"processes of the demo left: {left}"
    assert list(Path(tempfile.gettempdir()).glob("lbpair-demo-*")) == []
