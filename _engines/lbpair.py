"""
The lbpair engine: the master's resident background worker for the failover reactions.

It takes the ``lbpair_vrrp`` beacon events off the master's event bus as they come and queues
them (``lbpair.on_beacon``: the queue is bounded; nothing in an event is trusted yet), reacts to
the queued events at once, in batches (one journal job and one status job for all the pairs an
event storm touches), and does the work due later (summaries, pair checks after the settle time,
DNS and catch-up retries). It runs ``lbpair.flush resident=True`` in its own process, which the
master restarts if it ends; the events are read by a thread of that process.

Salt's reactor could queue the events too (``salt://reactor/lbpair/vrrp.sls``), but it handles one
event at a time, 0.1 to 0.5 s each on a busy master: in a storm of 40 events the last reached the
queue 9 s after the first (``bench/storm``). With ``listen: False`` the engine leaves the events to
that reactor.

Master configuration (``salt/master.d/lbpair.conf``)::

    engines:
      - lbpair: {}
"""

import contextvars
import logging
import threading
import time

import salt.utils.event

__virtualname__ = "lbpair"
BEACON_TAGS = "salt/beacon/"  # the bus's prefix match; the runner checks the whole tag

RESTART_PAUSE = 5  # s before working again after a failure (the master restarts an engine that ends)

log = logging.getLogger(__name__)


def __virtual__():
    if "lbpair.flush" not in __runners__:  # Salt's loader gives engines the master's runners
        return False, "lbpair: the lbpair runner is not loaded (salt-run saltutil.sync_all, or pip install 'saltext-lbpair[master]')"
    return __virtualname__


def start(listen=True):
    """Work for good: the reactions' background work, resident; ``listen``: queue the beacon events from the bus."""
    if listen:
        # in this context: Salt's loader finds __opts__ and __runners__ through context variables, which a thread does not inherit
        in_context = contextvars.copy_context().run
        threading.Thread(target=in_context, args=(_queue_beacon_events,), name="lbpair-beacon-events", daemon=True).start()
    while True:
        try:
            __runners__["lbpair.flush"](resident=True)
        except Exception:  # noqa: BLE001  (a failing round must not end the worker: the queue waits)
            log.exception("lbpair: the resident worker failed; working again in %d s", RESTART_PAUSE)
        time.sleep(RESTART_PAUSE)


def _queue_beacon_events():
    """Queue each ``lbpair_vrrp`` beacon event the master's bus carries, for good (a lost bus is opened again)."""
    while True:
        try:
            with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=True) as bus:
                while True:
                    event = bus.get_event(wait=5, tag=BEACON_TAGS, full=True)
                    if event and "/lbpair_vrrp/" in event["tag"]:
                        __runners__["lbpair.on_beacon"](event["tag"], event["data"])
        except Exception:  # noqa: BLE001  (the events go on; the nodes' journals keep what is missed meanwhile)
            log.exception("lbpair: reading the beacon events failed; reading again in %d s", RESTART_PAUSE)
            time.sleep(RESTART_PAUSE)
