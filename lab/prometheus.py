"""
Prometheus in the lab: node_exporter on both load balancers and on the master, HAProxy's own
exporter, and a real Prometheus (Debian's 2.42) in the mgmt namespace evaluating lbpair's rules.

==============================  ========================  =====================================
what                            where                     reads
==============================  ========================  =====================================
node_exporter on lb1, lb2       192.0.2.11-12:9100        the beacon's ``lbpair.prom`` in
                                (in the machine)          /var/lib/prometheus/node-exporter
node_exporter for the master    192.0.2.5:9100 (mgmt)     the master's ``lbpair_master.prom``
HAProxy's exporter              192.0.2.11-12:8405        pillar ``lbpair:haproxy:prometheus``
Prometheus                      192.0.2.5:9090 (mgmt)     all of the above, every 2 s
==============================  ========================  =====================================

Everything listens on the lab's management addresses only (documentation ranges), never in the
host's own namespace: :class:`LabPrometheus` refuses to start outside ``lbpair-mgmt``. Example,
inside the mgmt namespace with a lab up (as the pair tests and the demo run)::

    from lab.prometheus import LabPrometheus

    with LabPrometheus(lab, master_textfile_dir=directory) as prometheus:
        prometheus.api.query('lbpair_vrrp_state_master{node="lb1"}')
        prometheus.api.alerts()
"""

import contextlib
import copy
import json
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

from lab import netns
from lab.util import log, stop_process, wait_until

REPO = pathlib.Path(__file__).resolve().parent.parent
PROMETHEUS = "/usr/bin/prometheus"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
#: where Debian's node_exporter reads ``*.prom`` files, and where the beacon writes ``lbpair.prom``
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
MASTER_METRICS_FILE = "lbpair_master.prom"
#: the machines' copy of the host's node_exporter (the cached root has no such package) and its unit
MACHINE_EXPORTER = "/usr/local/bin/prometheus-node-exporter"
MACHINE_UNIT = "lbpair-lab-node-exporter"
NODE_EXPORTER_PORT = 9100
PROMETHEUS_PORT = 9090
HAPROXY_EXPORTER_PORT = 8405
MGMT_NETWORK = "192.0.2.0/24"
#: scrape and rule evaluation interval (s): a gauge change is in Prometheus within one of these
INTERVAL = 2
#: the shipped alert rules
RULES = REPO / "salt" / "prometheus" / "lbpair.rules.yml"
#: node_exporter's collectors in the lab: the textfile one, and a few cheap ones (2 shared cores)
COLLECTORS = ("textfile", "time", "loadavg", "meminfo")


class PrometheusError(RuntimeError):
    """Prometheus' HTTP API answered with an error, or not at all."""


def label_value(text):
    """*text* as a PromQL string literal's inside: backslash, double quote and newline escaped."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(metric, **labels):
    """``metric{label="value",...}`` with every value escaped (:func:`label_value`): values may come from a node."""
    matchers = ",".join(f'{name}="{label_value(value)}"' for name, value in labels.items())
    return f"{metric}{{{matchers}}}"


class PrometheusApi:
    """A small client of Prometheus' HTTP API at *url* (``http://192.0.2.5:9090``), with urllib."""

    def __init__(self, url, timeout=5):
        self.url, self.timeout = url.rstrip("/"), timeout

    def _get(self, path, **params):
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=self.timeout) as answer:
                document = json.load(answer)
        except urllib.error.HTTPError as error:  # a bad query: the body says why
            document = json.load(error)
        except (OSError, ValueError) as error:
            raise PrometheusError(f"{path}: {error}") from error
        if document.get("status") != "success":
            raise PrometheusError(f"{path}: {document.get('errorType')}: {document.get('error')}")
        return document["data"]

    def ready(self):
        """Whether Prometheus says it is ready to serve (``/-/ready``)."""
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=self.timeout) as answer:
                return answer.status == 200
        except OSError:
            return False

    def query(self, expr):
        """The result of instant query *expr*: ``[{"metric": {labels}, "value": [time, "text"]}, ...]``."""
        data = self._get("/api/v1/query", query=expr)
        return data["result"] if data["resultType"] in ("vector", "matrix") else [{"metric": {}, "value": data["result"]}]

    def values(self, expr):
        """``{(label, value) pairs sorted: float}`` of instant query *expr*."""
        return {tuple(sorted(sample["metric"].items())): float(sample["value"][1]) for sample in self.query(expr)}

    def value(self, expr):
        """The one value *expr* has now, None if it has none (ValueError if it has several)."""
        found = list(self.values(expr).values())
        if len(found) > 1:
            raise ValueError(f"{expr}: {len(found)} series")
        return found[0] if found else None

    def samples(self, expr, seconds):
        """The raw samples of each series of *expr* in the last *seconds*: ``{labels: [(scrape time, value), ...]}``."""
        data = self._get("/api/v1/query", query=f"{expr}[{int(seconds)}s]")
        return {tuple(sorted(series["metric"].items())): [(float(t), float(v)) for t, v in series["values"]] for series in data["result"]}

    def alerts(self, name=None):
        """The active alerts (pending and firing), those called *name* if given."""
        found = self._get("/api/v1/alerts")["alerts"]
        return [alert for alert in found if name in (None, alert["labels"].get("alertname"))]

    def targets(self):
        """The active scrape targets: ``[{"labels", "scrapeUrl", "health", "lastError", ...}]``."""
        return self._get("/api/v1/targets", state="active")["activeTargets"]

    def rule_files(self):
        """The files of the loaded rule groups."""
        return sorted({group["file"] for group in self._get("/api/v1/rules")["groups"]})


def haproxy_exporter_pillar(lbpair):
    """
    A copy of the ``lbpair`` pillar *lbpair* with HAProxy's exporter on each node's own
    (management) address, port 8405, allowed from the mgmt network.
    """
    with_exporter = copy.deepcopy(lbpair)
    addresses = {node: spec["address"] for node, spec in lbpair["nodes"].items()}  # the nodes' own: the lab's management network
    with_exporter.setdefault("haproxy", {})["prometheus"] = {"address": addresses, "port": HAPROXY_EXPORTER_PORT, "allow": [MGMT_NETWORK]}
    return with_exporter


def master_metrics_settings(directory):
    """
    ``{"metrics_file": <directory>/lbpair_master.prom}`` for the master's ``lbpair_reactions`` (and
    *directory* made).
    """
    pathlib.Path(directory).mkdir(parents=True, exist_ok=True)
    return {"metrics_file": str(pathlib.Path(directory) / MASTER_METRICS_FILE)}


def config(lb_addresses, master_address, rule_file, haproxy=True):
    """Prometheus' configuration: node_exporter on the LBs (``{node: address}``) and the master, HAProxy's exporter, *rule_file*."""
    every = f"{INTERVAL}s"
    scrape = [
        {"job_name": "node", "static_configs": [
            {"targets": [f"{address}:{NODE_EXPORTER_PORT}"], "labels": {"host": node}} for node, address in lb_addresses.items()
        ]},
        {"job_name": "master", "static_configs": [{"targets": [f"{master_address}:{NODE_EXPORTER_PORT}"], "labels": {"host": "mgmt"}}]},
    ]  # fmt: skip
    if haproxy:
        targets = [{"targets": [f"{address}:{HAPROXY_EXPORTER_PORT}"], "labels": {"host": node}} for node, address in lb_addresses.items()]
        scrape.append({"job_name": "haproxy", "static_configs": targets})
    return {
        "global": {"scrape_interval": every, "evaluation_interval": every, "scrape_timeout": every},
        "rule_files": [str(rule_file)],
        "scrape_configs": scrape,
    }


class LabPrometheus:
    """
    node_exporter on the *lab*'s machines and on mgmt (reading *master_textfile_dir*), and
    Prometheus on mgmt, started on ``__enter__`` and all stopped on ``__exit__`` (also when a start
    fails). *haproxy*: scrape HAProxy's exporter too. Files (config, storage,
    logs) go into a temporary folder removed afterwards.
    """

    def __init__(self, lab, master_textfile_dir, haproxy=True, master="mgmt"):
        self.lab, self.haproxy, self.master = lab, haproxy, master
        self.master_textfile_dir = pathlib.Path(master_textfile_dir)
        self.nodes = {name: lab.address(name) for name in lab.machines}
        self.address = lab.address(master)
        self.url = f"http://{self.address}:{PROMETHEUS_PORT}"
        self.api = PrometheusApi(self.url)
        self.rule_file = None
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        if not netns.is_current(f"{netns.PREFIX}{self.master}"):
            raise RuntimeError(f"Prometheus runs in the lab's {self.master} namespace only: python -m lab within {self.master} -- ...")
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _start(self):
        work = pathlib.Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="lbpair-prometheus-")))
        for node, address in self.nodes.items():
            self._node_exporter_on(node, address)
        self._master_exporter(work)
        self.rule_file = RULES
        settings = config(self.nodes, self.address, self.rule_file, self.haproxy)
        (work / "prometheus.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
        command = [
            PROMETHEUS, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address={self.address}:{PROMETHEUS_PORT}", "--storage.tsdb.retention.time=1d",
        ]  # fmt: skip
        self._daemon(command, work / "prometheus.log")
        wait_until(self.api.ready, 60, interval=0.2, what=f"Prometheus ready at {self.url}")
        log(f"Prometheus at {self.url} (rules: {self.rule_file})")

    def _daemon(self, command, log_path):
        """Start *command* here (in mgmt), output to *log_path*; stopped when the stack closes."""
        with open(log_path, "wb") as output:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        self._stack.callback(stop_process, process)
        return process

    def _master_exporter(self, work):
        self.master_textfile_dir.mkdir(parents=True, exist_ok=True)
        command = [NODE_EXPORTER, *exporter_flags(self.address, self.master_textfile_dir)]
        process = self._daemon(command, work / "node-exporter-master.log")
        self._wait_for_exporter(self.address, process)

    def _node_exporter_on(self, node, address):
        """A copy of the host's node_exporter in machine *node*, run as a transient unit of its systemd."""
        box = self.lab.machine(node)
        target = box.merged / MACHINE_EXPORTER.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(NODE_EXPORTER, target)
        box.run(["mkdir", "-p", TEXTFILE_DIR])
        unit = ["systemd-run", f"--unit={MACHINE_UNIT}", "--collect", "--property=Restart=on-failure"]
        box.run([*unit, MACHINE_EXPORTER, *exporter_flags(address, TEXTFILE_DIR)])
        self._stack.callback(lambda: box.pid and box.run(["systemctl", "stop", MACHINE_UNIT], check=False))
        self._wait_for_exporter(address)

    @staticmethod
    def _wait_for_exporter(address, process=None):
        url = f"http://{address}:{NODE_EXPORTER_PORT}/metrics"

        def answers():
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"node_exporter for {address} exited with {process.returncode}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
                return answer.status == 200
            return False

        wait_until(answers, 30, interval=0.2, what=f"node_exporter answering at {url}")

    def wait_for_targets(self, timeout=30):
        """Wait until every target was scraped and is up; return the targets."""

        def all_up():
            targets = self.api.targets()
            return targets if targets and all(target["health"] == "up" for target in targets) else None

        return wait_until(all_up, timeout, interval=0.5, what="every Prometheus target up")


def exporter_flags(address, textfile_dir):
    """node_exporter's arguments: listening on *address* only, the lab's collectors, *textfile_dir*."""
    return [
        f"--web.listen-address={address}:{NODE_EXPORTER_PORT}",
        f"--collector.textfile.directory={textfile_dir}",
        "--collector.disable-defaults",
        *(f"--collector.{name}" for name in COLLECTORS),
    ]


def moment_value(api, expr, wanted, timeout, interval=0.1):
    """The monotonic moment instant query *expr* first has value *wanted* (polled every *interval* s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.value(expr) == wanted:
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"{expr} was not {wanted} within {timeout} s")
