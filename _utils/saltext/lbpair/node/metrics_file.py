"""
The node's metrics file (``lbpair.prom`` in node_exporter's textfile directory), as the beacon
keeps it: it counts the transitions it journals (:meth:`NodeMetrics.record`) and, after each
batch of transitions and at each tick, gathers the facts (:mod:`saltext.lbpair.node.metrics_sources`)
and has the file written atomically (:func:`saltext.lbpair.core.prometheus_text.publish`) if its
content changed, or at least every :data:`REFRESH` seconds (``lbpair_metrics_written_timestamp_seconds``
says the beacon is alive).

The write itself (a temporary file, two fsyncs, a rename: 3.5 ms at the median here, a quarter of
a second on a busy disk) is done by a thread of its own (:class:`Publisher`), never on the minion's
loop. A write that fails (a full disk, a missing directory) is logged once, as a warning, until a
write succeeds again: the beacon's events never depend on this file.
"""

import collections
import concurrent.futures
import logging
import os
import threading
import time

from saltext.lbpair.core import prometheus_text
from saltext.lbpair.node import metrics, metrics_sources, track

log = logging.getLogger(__name__)

#: node_exporter's textfile directory on Debian (``prometheus-node-exporter``)
DEFAULT_DIRECTORY = "/var/lib/prometheus/node-exporter"
DEFAULT_PATH = os.path.join(DEFAULT_DIRECTORY, "lbpair.prom")
REFRESH = 60.0  # s: the file is written at least this often, changed or not
#: the one thread of this minion process that writes metrics files, started at its first write
WRITER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lbpair_vrrp-metrics")
#: ``{(instance, STATE): count}`` of the transitions journalled by this minion process, whichever
#: load of the beacon journalled them (Salt loads it anew at a pillar refresh or a state run)
TRANSITIONS = collections.Counter()


def configured_path(option, default=DEFAULT_PATH):
    """
    The metrics file of the beacon option ``metrics``: its path, None for ``none``; without the
    option, ``default`` if its directory exists (node_exporter is installed), else None.
    """
    if option == "none":
        return None
    if option is not None:
        return option
    return default if os.path.isdir(os.path.dirname(default)) else None


class Publisher:
    """
    Writes the newest text :meth:`offer` was given to ``path``, on ``writer``'s thread
    (:data:`WRITER`): the caller never waits for the disk, and a text offered while an older one
    still waits replaces it. ``failing`` is true from a failed write to the next one that succeeds.
    """

    def __init__(self, path, writer=WRITER):
        self.path = path
        self.writer = writer
        self.lock = threading.Lock()
        self.pending = None
        self.failing = False

    def offer(self, text):
        with self.lock:
            queued = self.pending is not None
            self.pending = text
        if not queued:
            self.writer.submit(self._write)

    def _write(self):
        with self.lock:
            text, self.pending = self.pending, None
        try:
            if not os.path.isdir(os.path.dirname(self.path)):  # publish would make it: node_exporter's package does
                raise FileNotFoundError(f"no directory {os.path.dirname(self.path)}")
            prometheus_text.publish(self.path, text)
        except Exception as exc:  # a full disk, a missing directory: never the beacon's events
            if not self.failing:
                log.warning("lbpair_vrrp: cannot write the metrics file %s: %s", self.path, exc)
            self.failing = True
            return
        if self.failing:
            log.warning("lbpair_vrrp: the metrics file %s is written again", self.path)
        self.failing = False

    def wait(self, timeout=10.0):
        """Wait until what was offered before is written (or failed)."""
        self.writer.submit(lambda: None).result(timeout)


class NodeMetrics:
    """
    The metrics file at ``path`` for the node ``node`` of ``pair``. ``local``: keepalived (a
    :class:`~saltext.lbpair.node.keepalived_process.Local`); ``certificates``: a
    :class:`~saltext.lbpair.node.metrics_sources.CertificateExpiry`; ``haproxy``: a
    :class:`~saltext.lbpair.node.metrics_sources.HaproxyProbe` (None: not known);
    ``last_known``: the journal's newest entry of each instance (their transition times).
    """

    def __init__(self, path, pair, node, local, certificates, haproxy, last_known=None, **options):
        self.path = path
        self.pair = pair
        self.node = node
        self.local = local
        self.priorities = metrics_sources.Priorities(local)
        self.certificates = certificates
        self.haproxy = haproxy
        self.track_directory = options.get("track_directory", track.DIRECTORY)
        self.counts = options.get("counts", TRANSITIONS)
        self.clock = options.get("clock", time.time)
        self.last_transition = {
            name: entry["time"] for name, entry in (last_known or {}).items() if isinstance(entry.get("time"), (int, float))
        }
        self.publisher = options.get("publisher") or Publisher(path)
        self.changed = True  # a transition or a track file changed since the last facts: the priorities may have
        self.track = None
        self.content = None  # the last text handed to the publisher, without its timestamp
        self.written = None
        self.failing = False  # gathering the facts failed (warned once)

    def record(self, entry):
        """Count a journalled transition (``{"instance", "state", "time", ...}``)."""
        key = (entry["instance"], entry["state"])
        self.counts[key] = self.counts.get(key, 0) + 1
        self.last_transition[entry["instance"]] = entry["time"]
        self.changed = True

    def facts(self, states, dbus, rogue_senders):
        """The node's facts now; ``states`` (``{instance: STATE}``), ``dbus`` and ``rogue_senders`` come from the beacon."""
        installed = self.local.installed_vips()
        track_files = metrics_sources.track_files(self.track_directory)
        changed, self.changed, self.track = self.changed or track_files != self.track, False, track_files
        return metrics.NodeFacts(
            pair=self.pair,
            node=self.node,
            states={name: state for name, state in states.items() if not installed or name in installed},
            transitions=dict(self.counts),
            last_transition=dict(self.last_transition),
            priorities=self.priorities.read(changed),
            dbus=dbus,
            keepalived_up=self.local.running(),
            haproxy_up=None if self.haproxy is None else self.haproxy.up(),
            track_files=track_files,
            rogue_senders=rogue_senders,
            certificates=self.certificates.read(),
        )

    def write(self, states, dbus, rogue_senders=None):
        """
        Have the file written if what it says changed, it is :data:`REFRESH` seconds old or the
        last write failed; returns whether it was handed to the :class:`Publisher`. Never raises:
        a failure is logged (once until it works again).
        """
        try:
            facts = self.facts(states, dbus, rogue_senders)
            content = prometheus_text.render(metrics.families(facts))
            now = self.clock()
            fresh = self.written is not None and now - self.written < REFRESH
            if content == self.content and fresh and not self.publisher.failing:
                return False
            self.publisher.offer(content + prometheus_text.render([metrics.written_family(facts, now)]))
        except Exception as exc:  # an unreadable fact, no thread at the interpreter's exit: never the beacon's events
            if not self.failing:
                log.warning("lbpair_vrrp: cannot gather the metrics for %s: %s", self.path, exc)
            self.failing = True
            return False
        self.content, self.written, self.failing = content, now, False
        return True

    def wait_written(self, timeout=10.0):
        """Wait until the last text handed over is written (or failed)."""
        self.publisher.wait(timeout)

    def close(self):
        if self.haproxy is not None:
            self.haproxy.close()
