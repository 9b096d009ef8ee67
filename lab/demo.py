"""The demo: the seed scenario on a lab built from scratch, step by step, with measured delays.

Runs inside the lab's mgmt namespace (``python -m lab demo`` puts itself there): a real
salt-master, two Debian machines with salt-minion, keepalived and HAProxy, six HTTP backends and a
client. Every step prints its status and duration; the failover drill prints how long the VIPs
took to move and how many client requests failed in each phase.
"""

import contextlib
import copy
import dataclasses
import json
import pathlib
import re
import signal
import sys
import tempfile
import time

from lab import browser, drills, pki, prometheus, scenarios, topology
from lab.load import ClientLoad
from lab.salt_master import Master, Pillar
from lab.services import ReactionServices
from saltext.lbpair.master.records import transitions
from saltext.lbpair.model.keepalived_model import VrrpState

NODES = ("lb1", "lb2")
#: where the demo leaves the failover report and its screenshot (the lab's own folders go with it)
REPORT_DIR = "/var/tmp/lbpair-demo"
NODE_ADDRESSES6 = {node: topology.seed_host(node).ip6 for node in NODES}
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


def moment_when(predicate, timeout, interval=0.05, what=None):
    """The monotonic moment *predicate* first held (polled every *interval* s); DemoFailed (naming *what*) after *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise DemoFailed(f"{what or 'the condition'} not reached within {timeout} s")


def highstate(master, node):
    """Apply the state tree; return the number of states that changed; fail on a failed state."""
    ret = master.salt(node, "state.apply", timeout=300).get(node)
    if not isinstance(ret, dict):
        raise DemoFailed(f"{node}: state.apply returned {ret!r}")
    failed = [state["__id__"] for state in ret.values() if state["result"] is not True]
    if failed:
        raise DemoFailed(f"{node}: states failed: {', '.join(failed)}")
    return sum(1 for state in ret.values() if state["changes"])


def check_balancing(lab, steps, services):
    for name, service in services.items():
        url = f"http://{service['vip']}/"
        seen = sorted({lab.curl(url) for _ in range(4)})
        jar = f"/tmp/demo-{name}.cookies"
        sticky = {lab.curl(url, "-c", jar, "-b", jar) for _ in range(4)}
        if len(seen) < 2 or len(sticky) != 1:
            raise DemoFailed(f"{name}: round robin saw {seen}, cookie persistence saw {sorted(sticky)}")
        steps.note(f"{name} {service['vip']}: round robin over {', '.join(seen)}; with the cookie always {sticky.pop()}")


REQUEST_TIMEOUT = 2.1  # lab/http_load.py's timeout: every request sent before a snapshot has ended by then


def one_failover(lab, load, vips, reactions=None):
    """
    Stop HAProxy on lb1 until the VIPs are on lb2, then start it until they are back on lb1.

    Returns the moments (monotonic seconds) ``stopped``, ``moved``, ``started``, ``back``, the
    client's ``{"requests", "failures"}`` sent during the ``failover`` and the ``failback`` (a
    request that was sent before the VIPs moved and failed after is the failover's), and, given
    a :class:`Reactions`, what each move set off (``failover_reactions``, ``failback_reactions``).
    """
    before = load.counts()
    if reactions:
        reactions.mark()
    stopped, stopped_on_lb1 = time.monotonic(), drills.now_on(lab, "lb1")
    lab.exec("lb1", ["systemctl", "stop", "haproxy"])
    moved = moment_when(lambda: lab.vips_on("lb2", vips) == vips, timeout=30)
    after_failover = load.counts()
    failover_reactions = reactions.awaited("lb2") if reactions else []
    drills.probe_failed(lab, "lb1", stopped_on_lb1)  # HAProxy found dead: its start is then a clean recovery
    time.sleep(1)
    started = time.monotonic()
    lab.exec("lb1", ["systemctl", "start", "haproxy"])
    back = moment_when(lambda: lab.vips_on("lb1", vips) == vips, timeout=30)
    failback_reactions = reactions.awaited("lb1") if reactions else []
    time.sleep(1)
    after_failback = load.counts()
    time.sleep(REQUEST_TIMEOUT)  # a request is counted in the phase it was sent in, failed or not
    final = load.counts()
    return {
        "stopped": stopped,
        "moved": moved,
        "started": started,
        "back": back,
        "failover": drills.sent_between(before, after_failover, final),
        "failback": drills.sent_between(after_failover, after_failback, final),
        "failover_reactions": failover_reactions,
        "failback_reactions": failback_reactions,
    }


def history_records(path):
    """The records of the master's history file (JSON lines), oldest first."""
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
    return []


def has_transitions(history_path, minion):
    """Whether the master's history holds a transition of *minion*."""
    return any(record.minion == minion for record in transitions(history_records(history_path)))


def announces_master(text, minion):
    """
    Whether a notification says *minion* became MASTER (alone, or in a flap-damping summary,
    whose arrows the webhook's chat escaping writes ``-&gt;``).
    """
    return f"{minion} is MASTER" in text or re.search(rf"^{minion} \S+ -(>|&gt;) MASTER ", text, re.MULTILINE) is not None


class Reactions:
    """
    What a node becoming MASTER sets off, seen from outside: its beacon's event on the master
    (*events*, a :class:`lab.salt_master.EventLog`), the record in the master's history, the DNS
    record, the webhook post and the mail (*services*, :class:`lab.services.ReactionServices`).
    """

    TIMEOUT = 30

    def __init__(self, services, history_path, addresses, events):
        self.services, self.history_path, self.addresses, self.events = services, history_path, addresses, events
        self.mark()

    def mark(self):
        """From now on, look only at what arrives after this moment."""
        self.since = time.monotonic()
        self.seen_before = {
            "history": len(history_records(self.history_path)),
            "webhook": len(self.services.webhook.texts()),
            "mail": len(self.services.smtp.mailbox.messages),
        }

    def _new(self, kind, items):
        return items[self.seen_before[kind] :]

    def beacon_event(self, minion):
        """``(arrival, tag, data)`` of *minion*'s first beacon event saying MASTER since the mark, or None."""
        prefix = f"salt/beacon/{minion}/lbpair_vrrp/"
        return self.events.first(lambda tag, data: tag.startswith(prefix) and data.get("state") == VrrpState.MASTER, self.since)

    def history(self, minion):
        """*minion*'s transitions to MASTER added to the master's history since the mark."""
        records = self._new("history", history_records(self.history_path))
        return [record for record in transitions(records) if record.minion == minion and record.becomes_master]

    def awaited(self, minion):
        """
        Wait until *minion* becoming MASTER has reached the master and everything that follows;
        return ``[(moment, what), ...]`` in the order it happened, and mark.
        """
        address = self.addresses[minion]
        services = self.services

        def polled(check):
            return lambda: time.monotonic() if check() else None

        checks = {
            "event on the master": lambda: (self.beacon_event(minion) or [None])[0],
            "transition in the master's history": polled(lambda: self.history(minion)),
            f"DNS active.{services.ZONE} -> {address}": polled(lambda: services.named.query("active", "A") == [address]),
            "webhook message delivered": polled(
                lambda: any(announces_master(text, minion) for text in self._new("webhook", services.webhook.texts()))
            ),
            "mail delivered": polled(
                lambda: any(announces_master(mail["body"], minion) for mail in self._new("mail", services.smtp.mailbox.messages))
            ),
        }
        seen = []
        deadline = time.monotonic() + self.TIMEOUT
        while checks and time.monotonic() < deadline:
            for what, check in list(checks.items()):
                moment = check()
                if moment:
                    seen.append((moment, what))
                    del checks[what]
            time.sleep(0.05)
        if checks:
            raise DemoFailed(f"{minion} became MASTER, but within {self.TIMEOUT} s no {', no '.join(checks)}")
        signalled = self.beacon_event(minion)[2]["time"]  # when the beacon got keepalived's D-Bus signal
        seen.append((time.monotonic() - (time.time() - signalled), f"VRRP transition: keepalived on {minion} signals MASTER"))
        self.mark()
        return sorted(seen)


def failover_drill(lab, steps, reactions, vips):
    load = ClientLoad(lab, [f"http://{vip}/" for vip in vips])
    try:
        drill = one_failover(lab, load, vips, reactions)
    finally:
        load.stop()
    failed = {phase: "{failures} of {requests} client requests failed".format(**drill[phase]) for phase in ("failover", "failback")}
    steps.timeline += [
        (drill["stopped"], "HAProxy on lb1 stopped"),
        *((moment, f"  {what}") for moment, what in drill["failover_reactions"]),
        (drill["moved"], f"  VIPs on lb2 seen by the demo ({failed['failover']} since HAProxy stopped)"),
        (drill["started"], "HAProxy on lb1 started"),
        *((moment, f"  {what}") for moment, what in drill["failback_reactions"]),
        (drill["back"], f"  VIPs back on lb1 seen by the demo ({failed['failback']} since the VIPs were on lb2)"),
    ]
    for phase, begin, end, what in (
        ("failover", "stopped", "moved", "VIPs moved to lb2 {} ms after HAProxy stopped"),
        ("failback", "started", "back", "VIPs back on lb1 {} ms after HAProxy started"),
    ):
        counts = drill[phase]
        delay = f"{1000 * (drill[end] - drill[begin]):.0f}"
        steps.note(f"{what.format(delay)}; {counts['failures']} of {counts['requests']} requests failed meanwhile")


def add_service_under_load(lab, steps, master, pillar):
    with_qux = copy.deepcopy(pillar.seed)
    with_qux["services"]["qux"] = QUX
    load = ClientLoad(lab, [f"http://{vip}/" for vip in pillar.vips])
    try:
        pillar.write(with_qux)
        for node in NODES:
            steps.note(f"{node}: {highstate(master, node)} states changed")
        moment_when(lambda: lab.curl(f"http://{QUX['vip']}/") in ("foo1", "foo2"), timeout=20)
    finally:
        counts = load.stop()
    steps.note(f"qux serves on {QUX['vip']}; {counts['failures']} of {counts['requests']} requests to foo, bar, baz failed")
    if counts["failures"]:
        raise DemoFailed(f"requests failed while adding a service: {counts['examples']}")


def planned_switchovers(lab, steps, master, vips):
    """``salt-run lbpair.switchover`` to lb2 and back to lb1 under client load: no request may fail."""
    load = ClientLoad(lab, [f"http://{vip}/" for vip in vips])
    try:
        moves = {node: drills.switchover(lab, load, master, vips, node) for node in ("lb2", "lb1")}
    finally:
        load.stop()
    for node, move in moves.items():
        counts = move["requests"]
        steps.note(f"salt-run lbpair.switchover to={node}: returned after {move['returned_ms']:.0f} ms (the transition confirmed)")
        steps.note(f"  {counts['failures']} of {counts['requests']} requests failed meanwhile; the runner's timeline:")
        for line in move["timeline"]:
            steps.note(f"    {line}")
    failed = [move["requests"]["failures"] for move in moves.values()]
    if any(failed):
        raise DemoFailed(f"requests failed during a planned switchover: {failed}")


def https_service(lab, steps, master, pillar, services):
    """
    shop over HTTPS (lab CA, SNI, routes by Host and path) on an IPv4 and an IPv6 VIP in an
    instance lb2 prefers (active/active), DNS per instance, then its clients across a failover.
    """
    ca = pki.Ca("lbpair demo CA")
    with tempfile.NamedTemporaryFile("w", prefix="lbpair-demo-ca-", suffix=".pem") as ca_file:
        ca_file.write(ca.pem)
        ca_file.flush()

        def https(host, path="/", client=None, vip=scenarios.SHOP_VIP):
            resolve = f"{host}:443:{f'[{vip}]' if ':' in vip else vip}"
            source = ["--interface", client] if client else []
            return lab.curl(f"https://{host}{path}", "--cacert", ca_file.name, "--resolve", resolve, *source)

        pillar.write(scenarios.with_shop(pillar.seed, ca, NODE_ADDRESSES6))
        for node in NODES:
            steps.note(f"{node}: {highstate(master, node)} states changed")
        shop_vips = sorted([scenarios.SHOP_VIP, scenarios.SHOP_VIP6])
        moment_when(lambda: lab.vips_on("lb2", shop_vips) == shop_vips, timeout=30, what="shop's VIPs on lb2")
        moment_when(lambda: https(scenarios.SHOP_HOST) in ("foo1", "foo2"), timeout=20, what="shop answering over HTTPS")
        steps.note(f"active/active: lb1 holds {', '.join(lab.vips_on('lb1', pillar.vips))}; lb2 holds {', '.join(shop_vips)}")
        moment_when(lambda: shop_dns(services) == [pillar.node_addresses["lb2"], NODE_ADDRESSES6["lb2"]], 30, what="DNS shop -> lb2")
        steps.note(f"DNS per instance: active -> {', '.join(services.named.query('active', 'A'))}; shop -> {', '.join(shop_dns(services))}")
        for vip in (scenarios.SHOP_VIP, scenarios.SHOP_VIP6):
            for host, path in ((scenarios.SHOP_HOST, "/"), (scenarios.SHOP_API_HOST, "/"), (scenarios.SHOP_HOST, "/api/orders")):
                steps.note(f"https://{host}{path} on {vip} (certificate checked against the lab CA) -> {https(host, path, vip=vip)}")
        sticky_failover(lab, steps, services, https)
    pillar.restore()  # shop goes: the planned switchover below is the seed's
    for node in NODES:
        steps.note(f"{node}: shop removed again, {highstate(master, node)} states changed")


def shop_dns(services):
    """Where DNS sends shop's clients: its A and AAAA records."""
    return services.named.query("shop", "A") + services.named.query("shop", "AAAA")


def sticky_failover(lab, steps, services, https):
    """Two clients stuck to foo1 and foo2 on lb2; lb2's HAProxy stops: on lb1 each keeps its server, IPv6 and DNS follow."""
    shop_vips = sorted([scenarios.SHOP_VIP, scenarios.SHOP_VIP6])
    clients = [lab.client_address(f"203.0.113.{host}") for host in (101, 102)]
    before = {client: https(scenarios.SHOP_HOST, client=client) for client in clients}
    time.sleep(0.5)  # the peers push the entries to lb1
    lab.exec("lb2", ["systemctl", "stop", "haproxy"])
    try:
        moment_when(lambda: lab.vips_on("lb1", shop_vips) == shop_vips, timeout=30, what="shop's VIPs on lb1")
        after = {client: https(scenarios.SHOP_HOST, client=client) for client in clients}
        over_ipv6 = https(scenarios.SHOP_HOST, vip=scenarios.SHOP_VIP6)
        moment_when(lambda: shop_dns(services) == [topology.seed_host("lb1").ip, NODE_ADDRESSES6["lb1"]], 30, what="DNS shop -> lb1")
    finally:
        lab.exec("lb2", ["systemctl", "start", "haproxy"])
    for client in clients:
        steps.note(f"client {client}: {before[client]} on lb2; HAProxy on lb2 stopped, lb1 serves: still {after[client]}")
    steps.note(f"over IPv6 lb1 answers ({over_ipv6}); DNS shop -> {', '.join(shop_dns(services))}")
    moment_when(lambda: lab.vips_on("lb2", shop_vips) == shop_vips, timeout=60, what="shop's VIPs back on lb2")
    if after != before:
        raise DemoFailed(f"clients moved across the failover: {before} -> {after}")


def print_timeline(steps):
    if not steps.timeline:
        return
    timeline = sorted(steps.timeline)
    origin = timeline[0][0]
    print("\nTimeline of the failover drill:")
    for moment, event in timeline:
        print(f"  {1000 * (moment - origin):8.0f} ms  {event}")


def sync_and_highstate(master, nodes, note=lambda text: None):
    """``saltutil.sync_all`` and ``state.apply`` on each node, as an operator does after installing lbpair."""
    for node in nodes:
        master.salt(node, "saltutil.sync_all")
        note(f"{node}: {highstate(master, node)} states changed")


def start_beacons(master, nodes):
    """Refresh the nodes' pillar (its ``beacons`` key) and wait until each runs the lbpair_vrrp beacon."""
    for node in nodes:
        master.salt(node, "saltutil.refresh_pillar", "wait=True")
        moment_when(lambda node=node: "lbpair_vrrp" in (master.salt(node, "beacons.list", "return_yaml=False").get(node) or {}), 30)


@dataclasses.dataclass
class Seeded:
    """What :func:`seeded_lab` yields."""

    lab: topology.Lab
    master: Master
    pillar: Pillar
    services: ReactionServices
    reactions: Reactions
    scraping: prometheus.LabPrometheus = None


@contextlib.contextmanager
def seeded_lab(steps, scrape=False, report_dir=None):
    """
    The lab with a master (and its failover reactions), the seed scenario highstated, the beacons
    on and the VIPs on lb1: yields a :class:`Seeded`. With *scrape*, Prometheus too
    (:class:`lab.prometheus.LabPrometheus`; the benchmarks leave it out: it costs CPU). With
    *report_dir*, ``lbpair.report`` writes its pages there (a folder that outlives the lab).
    """
    with tempfile.TemporaryDirectory(prefix="lbpair-demo-") as workdir, contextlib.ExitStack() as stack:
        pillar = Pillar.example(f"{workdir}/pillar")
        with steps.step("BIND9, an SMTP server and a webhook receiver start for the reactions"):
            services = stack.enter_context(ReactionServices(pathlib.Path(workdir)))
        history_path = f"{workdir}/history.jsonl"
        # no nodes: the master learns the pair (lb1+lb2) from its nodes' pillar
        block = services.reactions_block(None, history_path, damping_window=2, records=scenarios.LAB_RECORDS)
        block.update(prometheus.master_metrics_settings(f"{workdir}/master-metrics"))
        if report_dir:
            block["report_dir"] = report_dir
        master = Master(f"{workdir}/master", "0.0.0.0", pillar, reactions=block)
        stack.callback(master.stop)
        with steps.step("salt-master starts in the mgmt namespace, with lbpair's reactor"):
            master.start()
            events = master.events("salt/beacon/")
            stack.callback(events.stop)
        with steps.step("lab network and machines come up (lb1, lb2, 6 backends, client)"):
            lab = stack.enter_context(topology.Lab())
        with steps.step("minions lb1 and lb2 connect to the master"):
            master.wait_for_minions(list(NODES))
        with steps.step("extension synced and highstate applied with the seed pillar"):
            sync_and_highstate(master, NODES, steps.note)
        with steps.step("the lbpair_vrrp beacons start (pillar `beacons`)"):
            start_beacons(master, NODES)
        with steps.step("keepalived puts the VIPs on lb1, and the master's history says so"):
            moment_when(lambda: lab.vips_on("lb1", pillar.vips) == pillar.vips, timeout=30)
            steps.note(f"lb1 holds {', '.join(pillar.vips)}; lb2 holds {lab.vips_on('lb2', pillar.vips) or 'none'}")
            # each node's start-up transitions in the history: the first events a node sends are claims (it does
            # not confirm them at once) until the master catches up with its journal, and so would a drill's be
            moment_when(lambda: all(has_transitions(history_path, node) for node in NODES), timeout=60)
        scraping = start_prometheus(steps, stack, lab, pillar, f"{workdir}/master-metrics") if scrape else None
        reactions = Reactions(services, history_path, pillar.node_addresses, events)
        yield Seeded(lab, master, pillar, services, reactions, scraping)


def run(keep=False):
    """Build the lab, run the seed scenario and the drills, tear everything down."""
    steps = Steps()
    with seeded_lab(steps, scrape=True, report_dir=REPORT_DIR) as seeded:
        lab, master, pillar = seeded.lab, seeded.master, seeded.pillar
        with steps.step("the client sees round robin and cookie persistence"):
            check_balancing(lab, steps, pillar.seed["services"])
        with steps.step("failover drill: HAProxy on lb1 stops, the reactions follow, HAProxy comes back"):
            failover_drill(lab, steps, seeded.reactions, pillar.vips)
        with steps.step("shop over HTTPS and IPv6 on lb2, the seed on lb1 (active/active): SNI, routes, a sticky failover"):
            https_service(lab, steps, master, pillar, seeded.services)
        with steps.step("planned switchover under load: the VIPs to lb2 and back, no request fails"):
            planned_switchovers(lab, steps, master, pillar.vips)
        with steps.step("service qux added by a pillar edit and highstate, under load"):
            add_service_under_load(lab, steps, master, pillar)
        print_timeline(steps)
        print("\nsalt-run lbpair.history (the master's central failover history):")
        print(master.text("lbpair.history"))
        write_report(master)
        print_prometheus(seeded.scraping)
        if keep:
            wait_for_teardown(master, seeded.scraping)
    print(f"\nDemo finished in {time.monotonic() - steps.started:.0f} s.")


def write_report(master):
    """``salt-run lbpair.report``: the failover picture of the demo's history, and a screenshot of it by headless Chromium."""
    page = master.run("lbpair.report")["path"]
    print(f"\nsalt-run lbpair.report (the failover picture): {page}")
    if browser.CHROMIUM:
        print(f"  as Chromium draws it: {browser.screenshot(page, f'{REPORT_DIR}/lbpair-report.png')}")


def start_prometheus(steps, stack, lab, pillar, master_textfile_dir):
    """Prometheus and the exporters up (torn down with *stack*), every target scraped: the :class:`lab.prometheus.LabPrometheus`."""
    with steps.step("Prometheus starts in mgmt: node_exporter on lb1, lb2 and the master, HAProxy's exporter, lbpair's rules"):
        scraping = stack.enter_context(prometheus.LabPrometheus(lab, master_textfile_dir, haproxy=pillar.haproxy_exporter))
        targets = scraping.wait_for_targets()
        steps.note(f"Prometheus' UI: {scraping.url}/ (in the mgmt namespace); {len(targets)} targets up, rules {scraping.rule_file}")
    return scraping


def print_prometheus(scraping):
    """Where Prometheus' UI is, and what it says now: who is MASTER, which lbpair alerts are active."""
    print(f"\nPrometheus: {scraping.url}/ (inside the lab's mgmt namespace; rules {scraping.rule_file})")
    with contextlib.suppress(prometheus.PrometheusError):
        masters = scraping.api.values("lbpair_vrrp_state_master == 1")
        for labels in sorted(masters):
            found = dict(labels)
            print(f"  lbpair_vrrp_state_master: {found.get('node')} is MASTER of {found.get('vrrp_instance')}")
        alerts = [f"{alert['labels']['alertname']} ({alert['state']})" for alert in scraping.api.alerts()]
        print(f"  active alerts: {', '.join(alerts) or 'none'}")


def wait_for_teardown(master, scraping):
    print("\nThe lab is up. In another terminal: `python -m lab shell lb1`, or for the master:")
    print(f"  python -m lab shell mgmt .venv/bin/salt -c {master.config_dir} '*' lbpair_keepalived.status")
    print(f"  python -m lab shell mgmt curl -s '{scraping.url}/api/v1/alerts'   (Prometheus' UI: {scraping.url}/)")
    print("Press Enter (or Ctrl-C) to tear it down.", flush=True)
    with contextlib.suppress(KeyboardInterrupt, EOFError):
        if sys.stdin.isatty():
            input()
        else:
            signal.pause()
