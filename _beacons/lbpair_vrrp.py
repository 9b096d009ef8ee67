"""
Report keepalived's VRRP transitions as Salt events, live over D-Bus, none lost.

Configuration:

.. code-block:: yaml

    beacons:
      lbpair_vrrp:
        - bus: system            # or unix:path=/run/lb1/bus.sock; "none": JSON dump only
        - meta:                  # copied into every event (no secrets: keys like password are refused)
            site: paris
            pair: edge
        - metrics: /var/lib/prometheus/node-exporter/lbpair.prom   # "none": no metrics file

``bus`` is the D-Bus bus keepalived is on (it honours ``DBUS_SYSTEM_BUS_ADDRESS``).
Salt's own keys (``interval``, ``disable_during_state_run``, ``enabled``, ...) are
accepted. The minion options ``lbpair_keepalived: {pid_file, json_file, binary}``
tell where keepalived's pid and JSON dump are (for the fallback below), and
``lbpair_journal: {path, max_entries}`` where the journal is.

Event contract
--------------

One event per VRRP transition, tag
``salt/beacon/<minion>/lbpair_vrrp/<instance>/<STATE>``, data:

==================  ==============================================================
``id``              the minion id
``instance``        the VRRP instance, ``lbpair_51``
``interface``       its interface, ``eth0``
``vrid``            its virtual router id, ``51``
``family``          ``IPv4`` or ``IPv6``
``state``           the new state: INIT, BACKUP, MASTER, FAULT, DELETED, STOP
``previous_state``  the state before, or ``UNKNOWN`` when this minion never saw one
``received_at``     when the minion learnt it, ISO 8601 UTC with microseconds
``time``            the same, epoch seconds (float)
``seq``             per-minion sequence number from the journal, no gaps
``source``          ``live`` (a D-Bus signal) or ``reconstructed`` (found when
                    reading the state after an outage, or from the JSON dump)
``vips``            the instance's virtual IPs in the keepalived.conf installed, ``[]`` if unknown
``meta``            the ``meta`` mapping of the beacon configuration
==================  ==============================================================

Example::

    salt/beacon/lb2/lbpair_vrrp/lbpair_51/MASTER
    {"id": "lb2", "instance": "lbpair_51", "interface": "eth0", "vrid": 51,
     "family": "IPv4", "state": "MASTER", "previous_state": "BACKUP",
     "received_at": "2026-11-26T13:11:23.398471+00:00", "time": 1795698683.398471,
     "seq": 42, "source": "live", "vips": ["203.0.113.10", "203.0.113.20"],
     "meta": {"site": "paris"}}

Warnings: tag ``salt/beacon/<minion>/lbpair_vrrp/warning/<code>``, data
``{"code", "message"}``. ``keepalived_not_on_bus``: keepalived runs but is not on
D-Bus (after a dbus-daemon restart keepalived 2.2.7 never registers again until
it is restarted); until it is back the beacon follows the state through
keepalived's JSON dump at every beacon tick (``source: reconstructed``): each tick
reads the dump asked for at the tick before and asks for the next one, so the
minion's loop never waits for keepalived. ``bus: none`` uses only this path
(for keepalived builds without D-Bus). ``rogue_vrrp``: lbpair's firewall rule
dropped VRRP from an address that is not a node of the pair (the message names
it); once per sender, read every 5 s from ``lbpair_firewall.rogue_senders``.

Every transition is appended to the minion's journal (``lbpair_journal``) before
its event leaves: Salt drops beacon events while the minion is disconnected,
and the master catches up with ``lbpair_keepalived.transitions since=<seq>``.
At start the last journalled state of each instance is the last known state,
so a transition that happened while the minion was down is reported once,
``reconstructed``; flaps that came and went entirely during an outage are not
seen by anyone and cannot be reported.

Node metrics
------------

The beacon also keeps the node's metrics in Prometheus' text format, in the file ``metrics``
names, for node_exporter's textfile collector (``--collector.textfile.directory``; Debian's
``prometheus-node-exporter`` reads ``/var/lib/prometheus/node-exporter``). Without the option
the file is ``/var/lib/prometheus/node-exporter/lbpair.prom`` if that directory exists, else
there is none; ``metrics: none`` turns it off. The option must be an absolute path ending in
``.prom`` and is read only from the minion's own configuration (``/etc/salt/minion.d``): the same
key in a pillar's ``beacons`` is not followed (a warning says so), since the file is written
as root; only its ``none`` is.

The file is replaced atomically after each batch of transitions and at each beacon tick when
what it says changed, and at least once a minute (``lbpair_metrics_written_timestamp_seconds``).
Nothing it reads makes the minion's loop wait, and a thread of its own writes the file:
keepalived's JSON dump (the priorities; every 30 s, and a second after a transition or a track
file's change) and HAProxy's stats socket (every 5 s) are asked at one tick and read at a later
one, and a certificate is read again only when its file changed. A write that fails (a full
disk, no directory) is logged once and never holds up an event. Every metric has the labels ``pair``
(``lbpair:pair``) and ``node`` (the minion id):

===================================================  ===================================================
``lbpair_vrrp_state_<state>``                        ``master``, ``backup``, ``fault``, ``init``, ``stop``,
                                                     ``unknown``: 1 for the instance's state, 0 for the
                                                     others (``vrrp_instance``); without keepalived,
                                                     UNKNOWN unless it stopped (STOP)
``lbpair_vrrp_transitions_total``                    transitions journalled since the minion started
                                                     (``vrrp_instance``, ``state``), 0 for each state
``lbpair_vrrp_last_transition_timestamp_seconds``    the instance's last transition (``vrrp_instance``)
``lbpair_vrrp_effective_priority``                   its effective priority, from keepalived's JSON dump
``lbpair_beacon_dbus``                               1: the beacon follows D-Bus; 0: the JSON dump
``lbpair_keepalived_up``                             1 while keepalived's main process runs
``lbpair_haproxy_up``                                1 while HAProxy answers ``show info`` on its stats
                                                     socket within 3 s
``lbpair_track_file_set``                            1 for each of lbpair's track files set (``file``:
                                                     maintenance, defer, handover, haproxy)
``lbpair_rogue_vrrp_senders``                        senders of VRRP the firewall dropped (distinct)
``lbpair_certificate_expiry_timestamp_seconds``      notAfter of each certificate HAProxy serves
                                                     (``certificate``: ``<service>/<name>``)
``lbpair_metrics_written_timestamp_seconds``         when the file was written
===================================================  ===================================================

How it works: :mod:`saltext.lbpair.node.beacon`. Needs ``dbus-next`` (``pip install
'saltext-lbpair[minion]'``); without it the beacon does not load.
"""

import functools
import importlib
import logging
import os
import sys

import salt.utils.event

log = logging.getLogger(__name__)

__virtualname__ = "lbpair_vrrp"
RUNNER_KEY = "lbpair_vrrp.runner"


def _add_utils_folders():
    """
    Put Salt's utils folders (the synced ``extmods/utils`` among them) on ``sys.path``.

    The module, state and runner loaders add them while they load a module; the beacon
    loader does not, and Salt adds them at start-up only if they exist, which the synced
    folder does not on a minion that started before its first ``saltutil.sync_all``.
    """
    folders = [*(__opts__.get("utils_dirs") or []), os.path.join(__opts__["extension_modules"], "utils")]
    for folder in folders:
        if os.path.isdir(folder) and folder not in sys.path:
            sys.path.append(folder)


def __virtual__():
    _add_utils_folders()
    for module, remedy in (("dbus_next", "pip install 'saltext-lbpair[minion]'"), ("saltext.lbpair.node.beacon", "saltutil.sync_all")):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return False, f"lbpair_vrrp: {exc} ({remedy})"
    return __virtualname__


def _fire(events):
    """Send beacon events to the master now, as Salt's beacon loop does (``__beacons_return``)."""
    prefix = f"salt/beacon/{__opts__['id']}/{__virtualname__}/"
    beacons = []
    for event in events:
        data = {key: value for key, value in event.items() if key != "tag"}
        data.setdefault("id", __opts__["id"])
        beacons.append({"tag": prefix + event["tag"], "data": data, "beacon_name": __virtualname__})
    with salt.utils.event.get_event("minion", opts=__opts__, listen=False) as bus:
        bus.fire_event({"beacons": beacons}, "__beacons_return")


def _model():
    """This node's model from the lbpair pillar, or None without one."""
    from saltext.lbpair.core import errors
    from saltext.lbpair.model import pillar

    try:
        return pillar.minion_model(__pillar__, __opts__, {})
    except errors.InvalidValue as exc:
        log.debug("lbpair_vrrp: no firewall rules from the pillar: %s", exc)
        return None


def _rogue_senders(model):
    from saltext.lbpair.node import firewall

    return None if model is None else functools.partial(firewall.rogue_senders, model)


def _metrics_option(settings):
    """The ``metrics`` option of the minion's own configuration (root's file), not a pillar's."""
    from saltext.lbpair.node import beacon_config

    option, warning = beacon_config.own_metrics(settings, (__opts__.get("beacons") or {}).get(__virtualname__))
    if warning:
        log.warning("%s", warning)
    return option


def _metrics(settings, model, local, transitions):
    """The node's metrics file (a :class:`~saltext.lbpair.node.metrics_file.NodeMetrics`), or None without one."""
    from saltext.lbpair.model import pillar
    from saltext.lbpair.node import metrics_file, metrics_sources

    path = metrics_file.configured_path(_metrics_option(settings))
    if path is None:
        return None
    pair = model["pair"] if model else str((settings.get("meta") or {}).get("pair", ""))
    stats_socket = (model or {"haproxy": pillar.DEFAULT_HAPROXY})["haproxy"]["stats_socket"]
    directory = metrics_sources.certificate_directory(__salt__["config.get"]("lbpair_haproxy", {}))
    certificates = metrics_sources.CertificateExpiry(metrics_sources.certificate_files(model, directory))
    haproxy = metrics_sources.HaproxyProbe(stats_socket)
    return metrics_file.NodeMetrics(path, pair, __opts__["id"], local, certificates, haproxy, transitions.last_known())


def validate(config):
    """Check the beacon configuration: ``(True, "")`` or ``(False, "a clear message")``."""
    from saltext.lbpair.core import errors
    from saltext.lbpair.node import beacon_config, keepalived_process

    valid, message = beacon_config.check_config(config)
    if not valid or beacon_config.config_mapping(config).get("bus", "system") == "none":
        return valid, message
    try:
        local = keepalived_process.Local(__salt__["config.get"]("lbpair_keepalived", {}))
        return beacon_config.check_config(config, dbus_built=local.features()["dbus"])
    except (errors.LbpairError, errors.InvalidValue) as exc:
        return False, f"lbpair_vrrp: {exc}"


def beacon(config):
    """
    Return the VRRP transitions (and warnings) not delivered yet. Never blocks on
    D-Bus: the client runs in a thread of its own.
    """
    from saltext.lbpair.node import beacon as lib
    from saltext.lbpair.node import beacon_config, journal, keepalived_process

    runner = __context__.get(RUNNER_KEY)
    if runner is None or runner.closed:
        local = keepalived_process.Local(__salt__["config.get"]("lbpair_keepalived", {}))
        transitions = journal.Journal.from_options(__salt__["config.get"]("lbpair_journal", {}), __opts__["cachedir"])
        model = _model()
        settings = beacon_config.config_mapping(config)
        try:
            metrics = _metrics(settings, model, local, transitions)
        except Exception as exc:  # bad lbpair_haproxy options: the transitions matter more than the metrics
            log.warning("lbpair_vrrp: no metrics file: %s", exc)
            metrics = None
        runner = lib.Runner(settings, transitions, local, lib.InstalledVips(local), _fire, _rogue_senders(model), metrics)
        __context__[RUNNER_KEY] = runner
    events = runner.drain() + runner.follow_json() + runner.rogue_warnings()
    runner.write_metrics()
    return events


def close(config):
    """Stop the D-Bus thread; safe to call again and again."""
    runner = __context__.pop(RUNNER_KEY, None)
    if runner is not None:
        runner.close()
