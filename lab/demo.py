"""The demo: the seed scenario on a lab built from scratch, step by step, with measured delays.

Runs inside the lab's mgmt namespace (``python -m lab demo`` puts itself there): a real
salt-master, two Debian machines with salt-minion, keepalived and HAProxy, six HTTP backends and a
client. Every step prints its status and duration; the failover drill prints how long the VIPs
took to move and how many client requests failed in each phase.
"""

import contextlib
import copy
import json
import pathlib
import signal
import sys
import tempfile
import time

from lab import topology
from lab.load import ClientLoad
from lab.salt_master import Master, Pillar, seed_pillar_document
from lab.services import ReactionServices

NODES = ("lb1", "lb2")
QUX = {
    "vip": "203.0.113.40",
    "port": 80,
    "balance": "roundrobin",
    "cookie": "qux-server-id",
    "servers": {"qux1": {"address": "198.51.100.11", "port": 80}, "qux2": {"address": "198.51.100.12", "port": 80}},
}


class DemoFailed(RuntimeError):
    """A step of the demo did not do what it should."""


class Steps:
    """Prints numbered steps with their status and duration; keeps the timeline."""

    def __init__(self):
        self.number = 0
        self.started = time.monotonic()
        self.timeline = []

    @contextlib.contextmanager
    def step(self, title):
        self.number += 1
        print(f"[{self.number:2}] {title} ...", flush=True)
        start = time.monotonic()
        try:
            yield
        except BaseException:
            print(f"     FAILED after {time.monotonic() - start:.1f} s", flush=True)
            raise
        print(f"     ok ({time.monotonic() - start:.1f} s)", flush=True)

    def note(self, text):
        print(f"     {text}", flush=True)


def vips_on(lab, node, vips):
    addresses = lab.exec(node, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
    return sorted(vip for vip in vips if f" {vip}/32 " in addresses)


def moment_when(predicate, timeout, interval=0.05):
    """The monotonic moment *predicate* first held (polled every *interval* s); DemoFailed after *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise DemoFailed(f"not reached within {timeout} s")


def highstate(master, node):
    """Apply the state tree; return the number of states that changed; fail on a failed state."""
    ret = master.salt(node, "state.apply", timeout=300).get(node)
    if not isinstance(ret, dict):
        raise DemoFailed(f"{node}: state.apply returned {ret!r}")
    failed = [state["__id__"] for state in ret.values() if state["result"] is not True]
    if failed:
        raise DemoFailed(f"{node}: states failed: {', '.join(failed)}")
    return sum(1 for state in ret.values() if state["changes"])


def curl(lab, url, *extra):
    return lab.exec("client", ["curl", "-sS", "--max-time", "3", *extra, url]).stdout.strip()


def check_balancing(lab, steps, services):
    for name, service in services.items():
        url = f"http://{service['vip']}/"
        seen = sorted({curl(lab, url) for _ in range(4)})
        jar = f"/tmp/demo-{name}.cookies"
        sticky = {curl(lab, url, "-c", jar, "-b", jar) for _ in range(4)}
        if len(seen) < 2 or len(sticky) != 1:
            raise DemoFailed(f"{name}: round robin saw {seen}, cookie persistence saw {sorted(sticky)}")
        steps.note(f"{name} {service['vip']}: round robin over {', '.join(seen)}; with the cookie always {sticky.pop()}")


def _difference(later, earlier):
    return {key: later[key] - earlier[key] for key in ("requests", "failures")}


def one_failover(lab, load, vips, on_failover=lambda: []):
    """
    Stop HAProxy on lb1 until the VIPs are on lb2, then start it until they are back on lb1.

    Returns the moments (monotonic seconds) ``stopped``, ``moved``, ``started``, ``back``, and the
    client's ``{"requests", "failures"}`` during the ``failover`` and the ``failback``.
    """
    before = load.counts()
    stopped = time.monotonic()
    lab.exec("lb1", ["systemctl", "stop", "haproxy"])
    moved = moment_when(lambda: vips_on(lab, "lb2", vips) == vips, timeout=30)
    after_failover = load.counts()
    reactions = on_failover()
    time.sleep(1)
    started = time.monotonic()
    lab.exec("lb1", ["systemctl", "start", "haproxy"])
    back = moment_when(lambda: vips_on(lab, "lb1", vips) == vips, timeout=30)
    time.sleep(1)
    return {
        "stopped": stopped,
        "moved": moved,
        "started": started,
        "back": back,
        "failover": _difference(after_failover, before),
        "failback": _difference(load.counts(), after_failover),
        "reactions": reactions,
    }


def history_records(path):
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
    return []


def reactions_seen(history_path, services):
    """
    Wait for what lb2 becoming MASTER sets off on the master; return ``[(moment, what), ...]``
    for the history record, the DNS record, the webhook post and the mail, in the order seen.
    """
    checks = {
        "transition in the master's history": lambda: any(
            record.get("minion") == "lb2" and record.get("state") == "MASTER" for record in history_records(history_path)
        ),
        "DNS active.pair.example -> 192.0.2.12": lambda: services.named.query("active", "A") == ["192.0.2.12"],
        "webhook message delivered": lambda: any("lb2" in text for text in services.webhook.texts()),
        "mail delivered": lambda: any("lb2" in mail["body"] for mail in services.smtp.mailbox.messages),
    }
    seen = []
    deadline = time.monotonic() + 30
    while checks and time.monotonic() < deadline:
        for what, check in list(checks.items()):
            if check():
                seen.append((time.monotonic(), what))
                del checks[what]
        time.sleep(0.05)
    if checks:
        raise DemoFailed(f"not seen within 30 s of the failover: {', '.join(checks)}")
    return seen


def failover_drill(lab, steps, master, services, vips):
    load = ClientLoad(lab, [f"http://{vip}/" for vip in vips])
    try:
        history_path = master.config["lbpair_reactions"]["history"]["path"]
        drill = one_failover(lab, load, vips, on_failover=lambda: reactions_seen(history_path, services))
    finally:
        load.stop()
    steps.timeline += [
        (drill["stopped"], "HAProxy on lb1 stopped"),
        (drill["moved"], "VIPs on lb2 (VRRP transition)"),
        *((moment, f"  {what}") for moment, what in drill["reactions"]),
        (drill["started"], "HAProxy on lb1 started"),
        (drill["back"], "VIPs back on lb1 (preempt)"),
    ]
    for phase, begin, end, what in (
        ("failover", "stopped", "moved", "VIPs moved to lb2 {} ms after HAProxy stopped"),
        ("failback", "started", "back", "VIPs back on lb1 {} ms after HAProxy started"),
    ):
        counts = drill[phase]
        delay = f"{1000 * (drill[end] - drill[begin]):.0f}"
        steps.note(f"{what.format(delay)}; {counts['failures']} of {counts['requests']} requests failed meanwhile")


def add_service_under_load(lab, steps, master, pillar, vips):
    with_qux = copy.deepcopy(pillar.seed)
    with_qux["services"]["qux"] = QUX
    load = ClientLoad(lab, [f"http://{vip}/" for vip in vips])
    try:
        pillar.write(with_qux)
        for node in NODES:
            steps.note(f"{node}: {highstate(master, node)} states changed")
        moment_when(lambda: curl(lab, f"http://{QUX['vip']}/") in ("foo1", "foo2"), timeout=20)
    finally:
        counts = load.stop()
    steps.note(f"qux serves on {QUX['vip']}; {counts['failures']} of {counts['requests']} requests to foo, bar, baz failed")
    if counts["failures"]:
        raise DemoFailed(f"requests failed while adding a service: {counts['examples']}")


def print_timeline(steps):
    if not steps.timeline:
        return
    origin = steps.timeline[0][0]
    print("\nTimeline of the failover drill:")
    for moment, event in steps.timeline:
        print(f"  {1000 * (moment - origin):8.0f} ms  {event}")


@contextlib.contextmanager
def seeded_lab(steps):
    """
    The lab with a master (and its failover reactions), the seed scenario highstated, the beacons
    on and the VIPs on lb1: yields ``(lab, master, pillar, services)``.
    """
    with tempfile.TemporaryDirectory(prefix="lbpair-demo-") as workdir, contextlib.ExitStack() as stack:
        document = seed_pillar_document()
        pillar = Pillar(f"{workdir}/pillar", document["lbpair"], extra={"beacons": document["beacons"]})
        nodes = {name: spec["address"] for name, spec in pillar.seed["nodes"].items()}
        vips = seed_vips(pillar)
        with steps.step("BIND9, an SMTP server and a webhook receiver start for the reactions"):
            services = stack.enter_context(ReactionServices(pathlib.Path(workdir)))
        reactions = services.reactions_block(nodes, f"{workdir}/history.jsonl", damping_window=2)
        master = Master(f"{workdir}/master", "0.0.0.0", pillar, reactions=reactions)
        stack.callback(master.stop)
        with steps.step("salt-master starts in the mgmt namespace, with lbpair's reactor"):
            master.start()
        with steps.step("lab network and machines come up (lb1, lb2, 6 backends, client)"):
            lab = stack.enter_context(topology.Lab())
        with steps.step("minions lb1 and lb2 connect to the master"):
            master.wait_for_minions(list(NODES))
        with steps.step("extension synced and highstate applied with the seed pillar"):
            for node in NODES:
                master.salt(node, "saltutil.sync_all")
                steps.note(f"{node}: {highstate(master, node)} states changed")
        with steps.step("the lbpair_vrrp beacons start (pillar `beacons`)"):
            for node in NODES:
                master.salt(node, "saltutil.refresh_pillar", "wait=True")
                moment_when(lambda node=node: "lbpair_vrrp" in (master.salt(node, "beacons.list", "return_yaml=False").get(node) or {}), 30)
        with steps.step("keepalived puts the VIPs on lb1"):
            moment_when(lambda: vips_on(lab, "lb1", vips) == vips, timeout=30)
            steps.note(f"lb1 holds {', '.join(vips)}; lb2 holds {vips_on(lab, 'lb2', vips) or 'none'}")
        yield lab, master, pillar, services


def seed_vips(pillar):
    return sorted(service["vip"] for service in pillar.seed["services"].values())


def run(keep=False):
    """Build the lab, run the seed scenario and the drills, tear everything down."""
    steps = Steps()
    with seeded_lab(steps) as (lab, master, pillar, services):
        vips = seed_vips(pillar)
        with steps.step("the client sees round robin and cookie persistence"):
            check_balancing(lab, steps, pillar.seed["services"])
        with steps.step("failover drill: HAProxy on lb1 stops, the reactions follow, HAProxy comes back"):
            failover_drill(lab, steps, master, services, vips)
        with steps.step("service qux added by a pillar edit and highstate, under load"):
            add_service_under_load(lab, steps, master, pillar, vips)
        print_timeline(steps)
        print("\nsalt-run lbpair.history (the master's central failover history):")
        print(master.text("lbpair.history"))
        if keep:
            wait_for_teardown(master)
    print(f"\nDemo finished in {time.monotonic() - steps.started:.0f} s.")


def wait_for_teardown(master):
    print("\nThe lab is up. In another terminal: `python -m lab shell lb1`, or for the master:")
    print(f"  python -m lab shell mgmt .venv/bin/salt -c {master.config_dir} '*' lbpair_keepalived.status")
    print("Press Enter (or Ctrl-C) to tear it down.", flush=True)
    with contextlib.suppress(KeyboardInterrupt, EOFError):
        if sys.stdin.isatty():
            input()
        else:
            signal.pause()
