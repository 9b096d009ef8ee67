"""The lab's Salt master side: the state tree and pillar an operator would set up, and a master.

The integration tests start the master with pytest-salt-factories and the demo with
:class:`Master`; both give it the same file_roots (:func:`state_tree`) and pillar
(:class:`Pillar`). Run it inside the lab's mgmt namespace (``python -m lab within mgmt -- ...``),
where the minions reach it at 192.0.2.5.
"""

import copy
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time

import yaml

from lab.prometheus import haproxy_exporter_pillar
from lab.util import kill_all, pids_mentioning, stop_process, wait_until

REPO = pathlib.Path(__file__).resolve().parent.parent
#: file_roots entries, as an operator links them: the extension folders and salt/'s tree.
STATE_TREE = {
    "_utils": REPO / "_utils",
    "_modules": REPO / "_modules",
    "_states": REPO / "_states",
    "_beacons": REPO / "_beacons",
    "_runners": REPO / "_runners",
    "_engines": REPO / "_engines",
    "reactor": REPO / "salt" / "reactor",
    "lbpair": REPO / "salt" / "lbpair",
    "top.sls": REPO / "salt" / "top.sls",
}

#: lbpair's folders as minion and master options: Salt loads the extension from the checkout.
EXTENSION_DIRS = {
    "module_dirs": [str(REPO / "_modules")],
    "states_dirs": [str(REPO / "_states")],
    "beacons_dirs": [str(REPO / "_beacons")],
    "runner_dirs": [str(REPO / "_runners")],
    "engines_dirs": [str(REPO / "_engines")],
    "utils_dirs": [str(REPO / "_utils")],
}


def seed_pillar_document():
    """The whole example pillar (salt/pillar.example): ``lbpair`` and the ``beacons`` of the nodes."""
    with open(REPO / "salt" / "pillar.example", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def seed_pillar():
    """The seed scenario's ``lbpair`` pillar (salt/pillar.example)."""
    return seed_pillar_document()["lbpair"]


def reactor_settings(reactions):
    """
    The master settings that turn lbpair's reactions on: the shipped ones (``reactor``, ``schedule``...) and *reactions*,
    whose metrics file is beside the history unless they name one (never the host's node_exporter folder).
    """
    shipped = yaml.safe_load((REPO / "salt" / "master.d" / "lbpair.conf").read_text())
    if "metrics_file" not in reactions and "history" in reactions:
        reactions = {**reactions, "metrics_file": str(pathlib.Path(reactions["history"]["path"]).with_name("lbpair_master.prom"))}
    return {**shipped, "lbpair_reactions": reactions}


def state_tree(directory):
    """Fill *directory* with links to lbpair's state tree; return it (for ``file_roots``)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, target in STATE_TREE.items():
        if target.exists():
            (directory / name).symlink_to(target)
    return directory


class SaltCallError(RuntimeError):
    """A salt CLI printed something that is not JSON (an error message)."""


class Pillar:
    """The master's ``lbpair`` pillar in *directory* (for ``pillar_roots``); starts as *seed*."""

    def __init__(self, directory, seed, extra=None):
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.seed = copy.deepcopy(seed)
        self.extra = extra or {}  # other top-level pillar keys, e.g. the nodes' beacons
        (self.directory / "top.sls").write_text("base:\n  'lb*':\n    - lbpair\n")
        self.write(self.seed)

    @classmethod
    def example(cls, directory):
        """
        The whole example pillar (salt/pillar.example): the seed ``lbpair`` and the nodes' ``beacons``,
        with HAProxy's exporter on for the lab's Prometheus (:func:`lab.prometheus.haproxy_exporter_pillar`).
        """
        document = seed_pillar_document()
        return cls(directory, haproxy_exporter_pillar(document["lbpair"]), extra={"beacons": document["beacons"]})

    @property
    def haproxy_exporter(self):
        """Whether the seed turns HAProxy's Prometheus exporter on."""
        return "prometheus" in (self.seed.get("haproxy") or {})

    @property
    def vips(self):
        """The seed services' VIPs, sorted."""
        return sorted(service["vip"] for service in self.seed["services"].values())

    @property
    def node_addresses(self):
        """``{node: address}`` of the seed's load balancers."""
        return {name: node["address"] for name, node in self.seed["nodes"].items()}

    def write(self, lbpair):
        """Replace the pillar (the next state run sees it)."""
        (self.directory / "lbpair.sls").write_text(yaml.safe_dump({**self.extra, "lbpair": lbpair}))

    def restore(self):
        """Put the seed pillar back."""
        self.write(self.seed)


class Master:
    """A salt-master started from this process (in its network namespace), and its CLIs."""

    def __init__(self, root, address, pillar, reactions=None):
        self.root = pathlib.Path(root)
        self.address = address
        self.config_dir = self.root / "conf"
        self.process = None
        config = {
            "id": "lbpair-master",
            "root_dir": str(self.root),
            "interface": address,
            "auto_accept": True,
            "user": "root",
            "file_roots": {"base": [str(state_tree(self.root / "file_roots"))]},
            "pillar_roots": {"base": [str(pillar.directory)]},
            "log_file": str(self.root / "master.log"),
            "log_level_logfile": "info",
        }
        if reactions:
            config.update(reactor_settings(reactions))
        self.config = config
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "master").write_text(yaml.safe_dump(config))

    def start(self, timeout=60):
        """
        Start salt-master, wait until its request port answers, and sync lbpair's modules from its
        file_roots (``salt-run saltutil.sync_all``); with the reactions on, restart it then, as an
        operator does: a master starts its engines (lbpair's worker) only at its start.
        """
        self._start(timeout)
        self.run("saltutil.sync_all")
        if "engines" in self.config:
            stop_process(self.process, timeout=30)
            self._start(timeout)

    def _start(self, timeout):
        self.process = subprocess.Popen(
            [salt_script("salt-master"), "-c", str(self.config_dir), "--log-level=quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"salt-master exited with {self.process.returncode}; see {self.root}/master.log")
            with socket.socket() as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1" if self.address == "0.0.0.0" else self.address, 4506)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"salt-master did not listen on {self.address}:4506 within {timeout} s")

    def stop(self):
        """
        Stop salt-master and its children, and the reactions' background ``salt-run lbpair.flush``
        jobs (detached with setsid: left alone, one writes its job cache into the removed folder
        again); idempotent.
        """
        if self.process is not None:
            stop_process(self.process, timeout=30)
        kill_all(lambda: pids_mentioning(str(self.config_dir)))

    def salt(self, target, function, *args, timeout=120):
        """``salt TARGET FUNCTION ARGS`` (a comma-separated target is a list); ``{minion: return}``."""
        target_type = ["-L"] if "," in target else []
        cmd = [salt_script("salt"), "--static", "--timeout", str(timeout), *target_type, target, function, *args]
        return self._json(cmd)

    def run(self, function, *args):
        """``salt-run FUNCTION ARGS``; returns the runner's return."""
        return self._json([salt_script("salt-run"), function, *args])

    def text(self, function, *args):
        """``salt-run FUNCTION ARGS`` as an operator sees it (Salt's default outputter)."""
        cmd = [salt_script("salt-run"), "-c", str(self.config_dir), function, *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.rstrip()

    def wait_for_minions(self, minions, timeout=90):
        """Wait until every minion answers ``test.ping``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answered = self.salt(",".join(minions), "test.ping", timeout=5)
            except SaltCallError:  # "No minions matched" until their keys are accepted
                answered = {}
            if all(answered.get(minion) is True for minion in minions):
                return
            time.sleep(1)
        raise TimeoutError(f"minions {', '.join(minions)} did not answer within {timeout} s")

    def events(self, prefix):
        """Start an :class:`EventLog` of the events whose tag starts with *prefix*; stop it when done."""
        return EventLog(self.config_dir, prefix)

    def _json(self, cmd):
        out = subprocess.run(
            [*cmd, "-c", str(self.config_dir), "--out=json"], capture_output=True, text=True, check=False
        ).stdout
        try:
            return json.loads(out) if out.strip() else {}
        except ValueError:
            raise SaltCallError(f"{' '.join(cmd[:4])}...: {out.strip()[:500]}") from None


def salt_script(name):
    """The path of Salt's command *name* (``salt-run``) in this Python's environment."""
    return os.path.join(os.path.dirname(sys.executable), name)


class EventLog:
    """
    The events of the master configured in *config_dir* whose tag starts with *prefix*, as they
    arrive (``salt-run state.event`` read in a thread): ``.events`` is a list of
    ``(monotonic moment of arrival, tag, data)``; ``.unreadable`` the lines that were not.
    """

    READY_TAG = "lbpair/lab/event-log-ready"

    def __init__(self, config_dir, prefix, timeout=30):
        salt_run = [salt_script("salt-run"), "-c", str(config_dir)]
        self.prefix, self.events, self.unreadable, self._ready = prefix, [], [], threading.Event()
        self.process = subprocess.Popen(
            [*salt_run, "state.event", "count=-1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait_until(lambda: self._knock(salt_run), timeout, what="salt-run state.event listening")

    def _knock(self, salt_run):
        """Send the ready event; true once the reader has seen one (state.event says nothing until it listens)."""
        subprocess.run([*salt_run, "event.send", self.READY_TAG], capture_output=True, check=False)
        return self._ready.wait(1)

    def _read(self):
        for line in self.process.stdout:
            tag, _, data = line.rstrip("\n").partition("\t")
            if tag == self.READY_TAG:
                self._ready.set()
            elif tag.startswith(self.prefix):
                try:
                    self.events.append((time.monotonic(), tag, json.loads(data)))
                except ValueError:  # seen once in CI ("Extra data"): one bad line must not end the reader
                    self.unreadable.append(line)

    def first(self, predicate, since=0.0):
        """The first ``(moment, tag, data)`` arrived at or after *since* with ``predicate(tag, data)``, or None."""
        arrived = [event for event in list(self.events) if event[0] >= since]
        return next((event for event in arrived if predicate(event[1], event[2])), None)

    def stop(self):
        stop_process(self.process)
        self.process.stdout.close()
