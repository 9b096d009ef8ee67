"""
The ``lbpair_vrrp`` beacon's logic: keepalived's VRRP transitions, live over
D-Bus, journalled, none lost. The beacon module (``_beacons/lbpair_vrrp.py``)
documents the event contract; this is how it is kept.

A thread of its own (:class:`BusWatcher`) runs the D-Bus client (dbus-next, its
own asyncio loop): a match rule on ``path_namespace='/org/keepalived/Vrrp1'``
(keepalived's first signals come before it owns its name, so a match on the
sender would miss them) and on ``NameOwnerChanged`` for
``org.keepalived.Vrrp1``. After every (re)connection and every new owner it
walks ``Introspect`` and reads each instance's ``Name`` and ``State``. Lost
connections are retried with a backoff from 0.2 s doubling to 2 s. The thread
only passes plain records through a queue.

Salt calls ``beacon()`` once per ``loop_interval`` (1 s). A transition must not
wait for that tick, so when a record is queued the thread also asks the
minion's event loop (captured when the :class:`Runner` is made) to run the
runner's flush right away (``loop.call_soon_threadsafe``). The flush runs on the
minion's own loop thread, like ``beacon()``: it journals the transitions and
fires them at once. ``beacon()`` drains whatever is left (there is no running
loop under ``salt-call``).

Every few seconds (:data:`ROGUE_INTERVAL`) ``beacon()`` also reads the firewall's
record of the senders of the pair's VRIDs it dropped (:func:`saltext.lbpair.node.firewall.rogue_senders`)
and warns once per new sender (:class:`RogueWatch`).

With a metrics file (:class:`~saltext.lbpair.node.metrics_file.NodeMetrics`), the runner counts
each transition it journals and writes the file after each flush and at each tick
(:meth:`Runner.write_metrics`).
"""

import asyncio
import logging
import queue
import threading
import time

from saltext.lbpair.core import times
from saltext.lbpair.model import keepalived_model
from saltext.lbpair.node import vrrp_dbus

log = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 0.2, 2.0
STABLE_SESSION = 5.0
NOT_ON_BUS_GRACE = 3.0  # keepalived registers its name just after it starts
JSON_TIMEOUT = 5.0  # ask keepalived again if it wrote no dump for that long
WATCHER_THREAD = "lbpair_vrrp-dbus"
ROGUE_INTERVAL = 5.0  # s between two reads of the firewall's record of rogue VRRP senders
#: the rogue senders warned about by this minion process, whichever load of the beacon did it
REPORTED_ROGUES = set()


# --- transitions ----------------------------------------------------------------


class InstalledVips:
    """
    The VIPs of each instance, as :class:`Tracker` asks for them (``get``), from the keepalived.conf
    keepalived runs (``local``, a :class:`~saltext.lbpair.node.keepalived_process.Local`): an instance added by a
    highstate after the beacon started has its VIPs too.
    """

    def __init__(self, local):
        self.local = local

    def get(self, instance, default=()):
        return self.local.installed_vips().get(instance, default)


class Tracker:
    """Turns observed instance states into transitions, each change once."""

    def __init__(self, known=None, meta=None, vips=None):
        self.known = {name: entry["state"] for name, entry in (known or {}).items()}
        self.meta = meta or {}
        self.vips = vips or {}

    def observe(self, instance, state, source, received):
        """
        A transition (a mapping without ``seq``) if ``state`` differs from the last
        known state of ``instance`` (``{"name", "interface", "vrid", "family"}``), else None.
        """
        previous = self.known.get(instance["name"], "UNKNOWN")
        if state == previous:
            return None
        self.known[instance["name"]] = state
        return {
            "instance": instance["name"],
            "interface": instance.get("interface"),
            "vrid": instance.get("vrid"),
            "family": instance.get("family", "IPv4"),
            "state": state,
            "previous_state": previous,
            "received_at": times.iso_utc(received),
            "time": received,
            "source": source,
            "vips": list(self.vips.get(instance["name"], [])),
            "meta": dict(self.meta),
        }


def event_tag(transition):
    """The beacon's tag suffix for a transition: ``<instance>/<STATE>``."""
    return f"{transition['instance']}/{transition['state']}"


def warning(code, message):
    """A warning event as the beacon returns it."""
    return {"tag": f"warning/{code}", "code": code, "message": message}


def rogue_message(address):
    """The text of a ``rogue_vrrp`` warning."""
    return (
        f"VRRP from {address}, which is not a node of the pair, reached the pair's interface and was dropped: "
        "another VRRP router, or a rogue one, is on the segment"
    )


class RogueWatch:
    """
    ``rogue_vrrp`` warnings from the firewall's record of the senders its record rules
    dropped (``senders()``: a list of addresses), once per sender, reading it at most
    every :data:`ROGUE_INTERVAL` seconds. ``reported`` is :data:`REPORTED_ROGUES` by
    default, which outlives this object: Salt loads the beacon anew at every state run,
    and the record keeps a sender for an hour (nftables) or for good (iptables).
    """

    def __init__(self, senders, reported=None):
        self.senders = senders
        self.reported = REPORTED_ROGUES if reported is None else reported
        self.looked = None
        self.count = None  # distinct senders in the record at the last read (None before one)

    def warnings(self, now=None):
        """The warnings for senders not reported yet (``[]`` between two reads)."""
        now = time.monotonic() if now is None else now
        if self.looked is not None and now - self.looked < ROGUE_INTERVAL:
            return []
        self.looked = now
        try:
            senders = list(self.senders())
        except Exception as exc:  # no firewall tool, no permission: try again later
            log.debug("lbpair_vrrp: cannot read the firewall's rogue VRRP senders: %s", exc)
            return []
        self.count = len(set(senders))
        new = [address for address in senders if address not in self.reported]
        self.reported.intersection_update(senders)  # a sender the record forgot is new again when it comes back
        self.reported.update(new)
        for address in new:
            log.warning("lbpair_vrrp: %s", rogue_message(address))
        return [warning("rogue_vrrp", rogue_message(address)) for address in new]


# --- the D-Bus thread -------------------------------------------------------------


class BusWatcher(threading.Thread):
    """
    Follows keepalived on one D-Bus bus and puts plain records on ``records``:

    - ``("bus", {"connected": bool, "owner": bool}, time)``
    - ``("seen", instance, time)``: read while (re)reading every instance
    - ``("signal", instance, time)``: a ``VrrpStatusChange``

    where ``instance`` is ``{"name", "state" (number), "interface", "vrid", "family"}``.
    ``wake`` (a plain callable, may be None) is called after records were queued.
    """

    def __init__(self, address, records, wake=None):
        super().__init__(name=WATCHER_THREAD, daemon=True)
        self.address = address
        self.records = records
        self.wake = wake
        self.names = {}
        self.arrivals = 0  # messages received on the connection, replies included
        self.read_mark = 0  # arrivals when the last full read finished
        self.read_states = {}  # path -> state number found by that read
        self._loop = None
        self._stopping = None
        self._ready = threading.Event()

    def run(self):
        asyncio.run(self._main())

    def stop(self, timeout=5.0):
        """Stop the thread and wait for it; safe to call more than once."""
        self._ready.wait(timeout)
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:  # the loop closed in between
                pass
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def _put(self, kind, payload, received=None):
        self.records.put((kind, payload, received if received is not None else time.time()))
        if self.wake is not None:
            try:
                self.wake()
            except Exception:
                log.debug("lbpair_vrrp: could not wake the minion's loop", exc_info=True)

    async def _main(self):
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        stopping = asyncio.ensure_future(self._stopping.wait())
        backoff = BACKOFF_FIRST
        while not self._stopping.is_set():
            started = time.monotonic()
            session = asyncio.ensure_future(self._session())
            await asyncio.wait({session, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if self._stopping.is_set():
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
                break
            # A session that lasted starts the backoff again; quick failures double it.
            backoff = BACKOFF_FIRST if time.monotonic() - started > STABLE_SESSION else min(backoff * 2, BACKOFF_MAX)
            await asyncio.wait({stopping}, timeout=backoff)
        stopping.cancel()

    async def _session(self):
        """One connection, until it drops."""
        bus = None
        try:
            bus = await vrrp_dbus.connect(self.address)
        except Exception as exc:
            log.debug("lbpair_vrrp: cannot connect to %s: %s", self.address, exc)
            self._put("bus", {"connected": False, "owner": False})
            return
        log.info("lbpair_vrrp: connected to D-Bus %s", self.address)
        inbox = asyncio.Queue()

        def arrived(message):
            self.arrivals += 1
            if _is_signal(message):
                inbox.put_nowait((message, time.time(), self.arrivals))

        bus.add_message_handler(arrived)
        consumer = None
        try:
            owner = await vrrp_dbus.watch(bus)
            self._put("bus", {"connected": True, "owner": bool(owner)})
            if owner:
                await self._read_all(bus)
            consumer = asyncio.ensure_future(self._consume(bus, inbox))
            await bus.wait_for_disconnect()
        except Exception as exc:
            log.debug("lbpair_vrrp: D-Bus session ended: %s", exc)
        finally:
            if consumer is not None:
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)
            try:
                bus.disconnect()
            except Exception:
                pass
            self._put("bus", {"connected": False, "owner": False})
            log.info("lbpair_vrrp: lost D-Bus %s", self.address)

    async def _read_all(self, bus, *destination):
        """Read every instance, from keepalived's well-known name or the given sender."""
        found = await vrrp_dbus.instances(bus, *destination)
        received = time.time()
        self.read_mark = self.arrivals
        self.read_states = {path: instance["state"] for path, instance in found.items()}
        self.names = {path: instance["name"] for path, instance in found.items()}
        for instance in found.values():
            self._put("seen", instance, received)

    async def _consume(self, bus, inbox):
        while True:
            message, received, arrival = await inbox.get()
            try:
                await self._handle(bus, message, received, arrival)
            except Exception as exc:
                log.warning("lbpair_vrrp: could not handle %s %s: %s", message.member, message.path, exc)

    async def _handle(self, bus, message, received, arrival):
        if message.member == "NameOwnerChanged":
            owner = bool(message.body[2])
            self._put("bus", {"connected": True, "owner": owner}, received)
            if owner:
                await self._read_all(bus)
        elif message.member == "VrrpStatusChange":
            instance = vrrp_dbus.parse_instance_path(message.path) or {}
            name = self.names.get(message.path)
            if name is None:  # a new instance, or keepalived not yet on its name: ask the sender
                name = (await vrrp_dbus.instance(bus, message.path, message.sender))["name"]
                self.names[message.path] = name
            state = message.body[0]
            if await self._stale(bus, message, state, arrival):
                return
            self._put("signal", {**instance, "name": name, "state": state}, received)
        elif message.member == "VrrpReloaded":
            await self._read_all(bus, message.sender)

    async def _stale(self, bus, message, state, arrival):
        """
        Whether a status signal that arrived before the last full read finished is
        older than what that read found: ask keepalived again (it answers after
        sending every earlier signal) and keep the signal only if it still holds.
        """
        found = self.read_states.get(message.path)
        if arrival > self.read_mark or found is None or found == state:
            return False
        now = (await vrrp_dbus.instance(bus, message.path, message.sender))["state"]
        if now != state:
            log.debug("lbpair_vrrp: %s: signal %s is older than the state read (%s)", message.path, state, found)
            return True
        return False


def _is_signal(message):
    return message.message_type.name == "SIGNAL"


# --- the beacon's state on the minion's loop thread --------------------------------


class Runner:
    """
    What one configured beacon keeps between ticks; it lives on the minion's loop
    thread. ``settings``: the beacon's configuration as one mapping; ``journal``: a
    :class:`~saltext.lbpair.node.journal.Journal`; ``local``: a
    :class:`~saltext.lbpair.node.keepalived_process.Local`; ``vips``: ``{instance: [vip, ...]}`` (or :class:`InstalledVips`);
    ``fire(events)`` sends beacon events to the master at once; ``rogue_senders()``,
    if given, reads the firewall's record of rogue VRRP senders (:class:`RogueWatch`);
    ``metrics``, if given, is the node's metrics file (:class:`~saltext.lbpair.node.metrics_file.NodeMetrics`).
    """

    def __init__(self, settings, journal, local, vips, fire, rogue_senders=None, metrics=None):
        self.bus = settings.get("bus", "system")
        self.journal = journal
        self.keepalived = local
        self.fire = fire
        self.records = queue.Queue()
        self.tracker = Tracker(journal.last_known(), settings.get("meta"), vips)
        self.on_bus = False
        self.absent_since = time.monotonic()
        self.warned = False
        self.json_token = None
        self.json_asked = 0.0
        self.closed = False
        self.rogues = None if rogue_senders is None else RogueWatch(rogue_senders)
        self.metrics = metrics
        self.loop = _running_loop()
        self.watcher = None
        if self.bus != "none":
            _stop_orphaned_watchers()
            wake = None if self.loop is None else self._wake
            self.watcher = BusWatcher(self.bus, self.records, wake)
            self.watcher.start()

    def _wake(self):
        """Called from the D-Bus thread: run ``flush`` on the minion's loop now."""
        self.loop.call_soon_threadsafe(self.flush)

    def _journal(self, transition):
        entry = self.journal.append(transition)
        if self.metrics is not None:
            try:
                self.metrics.record(entry)
            except Exception:  # the event matters, the counter does not
                log.debug("lbpair_vrrp: could not count a transition for the metrics", exc_info=True)
        return {"tag": event_tag(entry), **entry}

    def drain(self):
        """Journal the queued observations' transitions; returns the beacon events."""
        events = []
        while True:
            try:
                kind, payload, received = self.records.get_nowait()
            except queue.Empty:
                return events
            if kind == "bus":
                self._bus_changed(payload["connected"] and payload["owner"])
                continue
            state = keepalived_model.state_name(payload["state"])
            source = "live" if kind == "signal" else "reconstructed"
            transition = self.tracker.observe(payload, state, source, received)
            if transition:
                events.append(self._journal(transition))

    def _bus_changed(self, on_bus):
        if on_bus and not self.on_bus:
            self.warned = False
            self.json_token = None
        elif not on_bus and self.on_bus:
            self.absent_since = time.monotonic()
        self.on_bus = on_bus

    def flush(self):
        """Drain and fire the events on the minion's bus at once (runs on the minion's loop)."""
        if self.closed:
            return
        try:
            events = self.drain()
            if events:
                self.fire(events)
        except Exception:
            log.exception("lbpair_vrrp: could not deliver transitions")
        self.write_metrics()

    def write_metrics(self):
        """Write the node's metrics file, if there is one and what it says changed; never raises."""
        if self.metrics is None or self.closed:
            return
        rogues = None if self.rogues is None else self.rogues.count
        self.metrics.write(self.tracker.known, self.bus != "none" and self.on_bus, rogues)

    def follow_json(self):
        """The fallback while keepalived runs but is not on D-Bus: events from the JSON dump."""
        if self.on_bus or self.bus != "none" and time.monotonic() - self.absent_since < NOT_ON_BUS_GRACE:
            return []
        if not self.keepalived.running():
            return []
        events = []
        if self.bus != "none" and not self.warned:
            self.warned = True
            message = (
                f"keepalived runs but is not on D-Bus ({self.bus}): after a dbus-daemon restart it does not "
                "register again; restart keepalived. Until then lbpair_vrrp follows its JSON dump every beacon "
                "interval."
            )
            log.warning("lbpair_vrrp: %s", message)
            events.append(warning("keepalived_not_on_bus", message))
        instances = self._json_dump()
        received = time.time()
        for name, instance in (instances or {}).items():
            transition = self.tracker.observe({**instance, "name": name}, instance["state"], "reconstructed", received)
            if transition:
                events.append(self._journal(transition))
        return events

    def rogue_warnings(self):
        """A ``rogue_vrrp`` warning per sender of VRRP the firewall dropped, once each (see :class:`RogueWatch`)."""
        return [] if self.rogues is None else self.rogues.warnings()

    def _json_dump(self):
        """
        The dump keepalived wrote since the last tick's request (None if none yet),
        and the request for the next tick: the minion's loop never waits for it.
        """
        instances = None
        if self.json_token is not None:
            instances = self.keepalived.read_json(self.json_token)
        if instances is not None or self.json_token is None or time.monotonic() - self.json_asked > JSON_TIMEOUT:
            try:
                self.json_token = self.keepalived.request_json()
                self.json_asked = time.monotonic()
            except Exception as exc:
                log.warning("lbpair_vrrp: cannot ask keepalived for its JSON dump: %s", exc)
                self.json_token = None
        return instances

    def close(self):
        if self.closed:
            return
        self.flush()
        self.closed = True
        if self.watcher is not None:
            self.watcher.stop()
        if self.metrics is not None:
            self.metrics.close()


def _stop_orphaned_watchers():
    """
    Stop D-Bus threads of earlier loads of this beacon in this minion process.

    A pillar refresh, ``saltutil.sync_all`` or a state run makes Salt load its
    beacons anew, and the old load is not always closed: its thread went on
    reporting every transition a second (third, ...) time under new sequence
    numbers. One watcher per minion process; the new one re-reads every
    instance, so stopping the old one loses nothing.
    """
    for thread in threading.enumerate():
        if thread.name == WATCHER_THREAD and thread is not threading.current_thread() and hasattr(thread, "stop"):
            log.info("lbpair_vrrp: stopping the D-Bus thread of an earlier load of this beacon")
            thread.stop()


def _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
