"""
What a reactions suite drives: its nodes' journals and the beacon events they send, the master's
runner, and what the outside world received (:class:`Harness`). Helpers, no fixtures.
"""

import subprocess
import sys
from pathlib import Path

from lab.util import wait_until
from saltext.lbpair.master import reaction_state
from saltext.lbpair.master.scheduler import Scheduler
from tests.support import journal
from tests.support.receivers import clear_received

INSTANCE = journal.INSTANCE


class Harness:
    """What the tests drive: the pair (or pairs), the minions, and what the outside world received."""

    def __init__(self, pair, minions, master, services, reactions, events):
        self.pair, self.minions, self.master, self.events = pair, minions, master, events
        self.named, self.mailbox, self.webhook = services.named, services.smtp.mailbox, services.webhook
        self.smtp_password = services.password
        self.history_path = reactions["history"]["path"]

    def journal(self, minion, state, previous, instance=INSTANCE):
        """Journal a transition on ``minion`` as its beacon would; returns the entry with its seq."""
        return journal.journal_transition(self.minions[minion], state, previous, instance)

    def fire(self, sender, entries, claimed=None):
        """``sender`` sends beacon events for ``entries`` to the master, in ``claimed``'s name if given."""
        journal.fire_beacon_events(self.minions[sender], entries, claimed)

    def transition(self, minion, state, previous):
        entry = self.journal(minion, state, previous)
        self.fire(minion, [entry])
        return entry

    def history(self):
        return journal.history(self.history_path)

    def transitions(self):
        return [r for r in self.history() if r["kind"] == "transition"]

    def salt_run(self, *args):
        """``salt-run`` as an operator types it (default outputter); returns its output."""
        command = [str(Path(sys.executable).parent / "salt-run"), "-c", str(self.master.config_dir), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def reactions(self, fun, after):
        """The returns of the lbpair runner's ``fun`` the reactor ran since ``after`` (epoch)."""
        return journal.runner_returns(self.events, self.master, fun, after)

    def wait_reactions(self, fun, after, count, timeout=60):
        return wait_until(lambda: len(self.reactions(fun, after)) >= count and self.reactions(fun, after), timeout,
                          interval=0.2, what=f"{count} {fun} reactions")

    def wait_history(self, predicate, timeout=30, what="history"):
        return wait_until(lambda: predicate(self.history()), timeout, interval=0.2, what=what)


def _background_work_done(state_path):
    """
    Whether the background worker (the ``lbpair`` engine, or a ``lbpair.flush`` job) has nothing due
    or queued and no round under way: it would write into the next test's state.
    """
    return Scheduler(reaction_state.ReactionStore(state_path), wake=None).idle()


def start_afresh(reactions, history_dir, minions, services, damping_window):
    """
    Empty history, reaction state and journals, nothing received, once the previous test's
    background work ended. The locks stay: the resident worker holds its slot's for good.
    """
    state_path = f"{reactions['history']['path']}.state.json"
    wait_until(lambda: _background_work_done(state_path), damping_window + 20, what="the previous test's background work")
    for path in history_dir.iterdir():
        if not path.name.endswith((".lock", ".worker")):
            path.unlink()
    for minion in minions.values():
        Path(journal.minion_journal(minion).path).unlink(missing_ok=True)
    clear_received(services)
