"""What the reactions write to and read from the failover history, a full disk logged rather than fatal."""

import logging
import time

from saltext.lbpair.core.times import iso_utc

log = logging.getLogger(__name__)

RECENT_RECORDS = 500  # enough history to know the last MASTER and the VIPs of each instance


class Chronicle:
    """
    The notes of one pair's reactions in ``history`` (a :class:`~saltext.lbpair.master.history.History`),
    stamped with the time (``clock``) and the ``pair``.
    """

    def __init__(self, history, clock=time.time, pair=None):
        self.history = history
        self.clock = clock
        self.pair = pair

    def recent(self):
        """The newest records of the history, or none if it cannot be read (what they tell is a nicety)."""
        try:
            return self.history.recent(RECENT_RECORDS)
        except OSError as exc:
            log.error("lbpair: the history cannot be read: %s", exc)
            return []

    def note(self, record):
        """Append a record the master concluded (alarm, DNS outcome, warning...); a full disk is logged, not fatal."""
        try:
            self.history.append([{"at": iso_utc(self.clock()), "pair": self.pair, **record}])
        except OSError as exc:
            log.error("lbpair: could not write %s to the history: %s", record.get("kind"), exc)
