"""
The node's metrics file (``lbpair.prom`` in node_exporter's textfile directory), as the beacon
keeps it: it counts the transitions it journals (:meth:`NodeMetrics.record`) and, after each
batch of transitions and at each tick, gathers the facts (:mod:`saltext.lbpair.node.metrics_sources`)
and writes the file atomically (:func:`saltext.lbpair.core.prometheus_text.publish`) if its
content changed, or at least every :data:`REFRESH` seconds (``lbpair_metrics_written_timestamp_seconds``
says the beacon is alive).

A write that fails (a full disk, a missing directory) is logged once, as a warning, until a write
succeeds again: the beacon's events never depend on this file.
"""

import collections
import logging
import os
import time

from saltext.lbpair.core import prometheus_text
from saltext.lbpair.node import metrics, metrics_sources, track

log = logging.getLogger(__name__)

#: node_exporter's textfile directory on Debian (``prometheus-node-exporter``)
DEFAULT_DIRECTORY = "/var/lib/prometheus/node-exporter"
DEFAULT_PATH = os.path.join(DEFAULT_DIRECTORY, "lbpair.prom")
REFRESH = 60.0  # s: the file is written at least this often, changed or not
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
        self.content = None  # the last text written, without its timestamp
        self.written = None
        self.failing = False

    def record(self, entry):
        """Count a journalled transition (``{"instance", "state", "time", ...}``)."""
        key = (entry["instance"], entry["state"])
        self.counts[key] = self.counts.get(key, 0) + 1
        self.last_transition[entry["instance"]] = entry["time"]

    def facts(self, states, dbus, rogue_senders):
        """The node's facts now; ``states`` (``{instance: STATE}``), ``dbus`` and ``rogue_senders`` come from the beacon."""
        installed = self.local.installed_vips()
        return metrics.NodeFacts(
            pair=self.pair,
            node=self.node,
            states={name: state for name, state in states.items() if not installed or name in installed},
            transitions=dict(self.counts),
            last_transition=dict(self.last_transition),
            priorities=self.priorities.read(),
            dbus=dbus,
            keepalived_up=self.local.running(),
            haproxy_up=None if self.haproxy is None else self.haproxy.up(),
            track_files=metrics_sources.track_files(self.track_directory),
            rogue_senders=rogue_senders,
            certificates=self.certificates.read(),
        )

    def write(self, states, dbus, rogue_senders=None):
        """
        Write the file if what it says changed or it is :data:`REFRESH` seconds old; returns
        whether it wrote. Never raises: a failure is logged (once until a write succeeds).
        """
        try:
            facts = self.facts(states, dbus, rogue_senders)
            content = prometheus_text.render(metrics.families(facts))
            now = self.clock()
            if content == self.content and self.written is not None and now - self.written < REFRESH:
                return False
            if not os.path.isdir(os.path.dirname(self.path)):  # publish would make it: node_exporter's package does
                raise FileNotFoundError(f"no directory {os.path.dirname(self.path)}")
            prometheus_text.publish(self.path, content + prometheus_text.render([metrics.written_family(facts, now)]))
        except Exception as exc:  # a full disk, a missing directory, an unreadable fact: never the beacon's events
            if not self.failing:
                log.warning("lbpair_vrrp: cannot write the metrics file %s: %s", self.path, exc)
            self.failing = True
            return False
        if self.failing:
            log.warning("lbpair_vrrp: the metrics file %s is written again", self.path)
        self.content, self.written, self.failing = content, now, False
        return True

    def close(self):
        if self.haproxy is not None:
            self.haproxy.close()
