"""
The lbpair engine: the master's resident background worker for the failover reactions.

The reactor only queues the ``lbpair_vrrp`` beacon events; this engine reacts to them at once, in
batches (one journal job and one status job for all the pairs an event storm touches), and does
the work due later (summaries, pair checks after the settle time, DNS and catch-up retries). It
runs ``lbpair.flush resident=True`` in its own process, which the master restarts if it ends.
Without it, the reactions start a ``salt-run lbpair.flush`` in the background when there is work.

Master configuration (``salt/master.d/lbpair.conf``)::

    engines:
      - lbpair: {}
"""

import logging
import time

__virtualname__ = "lbpair"

RESTART_PAUSE = 5  # s before working again after a failure (the master restarts an engine that ends)

log = logging.getLogger(__name__)


def __virtual__():
    if "lbpair.flush" not in __runners__:  # Salt's loader gives engines the master's runners
        return False, "lbpair: the lbpair runner is not loaded (salt-run saltutil.sync_all, or pip install 'saltext-lbpair[master]')"
    return __virtualname__


def start():
    """Work for good: the reactions' background work, resident."""
    while True:
        try:
            __runners__["lbpair.flush"](resident=True)
        except Exception:  # noqa: BLE001  (a failing round must not end the worker: the queue waits)
            log.exception("lbpair: the resident worker failed; working again in %d s", RESTART_PAUSE)
        time.sleep(RESTART_PAUSE)
