"""
The master's calls to the pair's nodes: one job function on some nodes, with the confirm
timeout, its answers and failures, and which node lately left a job unanswered ("silent").

``ask(targets, fun, kwarg, timeout)`` (Salt's LocalClient in the ``lbpair`` runner) returns
``({minion: return}, {minion: failure reason})``: the returns of the successful jobs and the
reasons of the others. What the planned moves and the certificate watch need of the pair's
nodes is this client, not the whole reactions.
"""

import time

from saltext.lbpair.core.errors import LbpairError

SILENT_WINDOW = 30  # s after an unanswered job during which a node's events are claims without asking it
FIRST_TRY = 3  # s of the first, brief ask of :meth:`NodeClient.answers_soon`
NO_RETURN = "Minion did not return"  # how Salt's job return begins for a minion that did not answer


class NodeClient:
    """Job calls to ``nodes`` (names) through ``ask``; ``silence`` keeps when each node last left a job unanswered."""

    def __init__(self, ask, nodes, timeout, silence, clock=time.time):
        self.ask = ask
        self.nodes = list(nodes)
        self.timeout = timeout
        self.silence = silence
        self.clock = clock

    def answers(self, targets, fun, kwarg=None, timeout=None):
        """``({minion: return}, {minion: failure})`` of ``fun`` on ``targets``, with the confirm timeout unless told."""
        return self.ask(list(targets), fun, kwarg or {}, timeout or self.timeout)

    def answers_soon(self, targets, fun, kwarg=None):
        """
        :meth:`answers`, asked briefly, then once more, with the full timeout, of those that did not
        answer: a node that has just (re)connected misses publications for a moment.
        """
        answers, failures = self.answers(targets, fun, kwarg, timeout=min(FIRST_TRY, self.timeout))
        missing = [target for target in targets if answers.get(target) is None]
        if missing:
            more, failures = self.answers(missing, fun, kwarg)
            answers.update(more)
        return answers, failures

    def tell(self, targets, fun, on=None, **kwarg):
        """Run ``fun`` on every one of ``targets``, which must all succeed (else :class:`LbpairError`); their answers."""
        kwarg = kwarg if on is None else {"on": on, **kwarg}
        answers, failures = self.answers(targets, fun, kwarg)
        if failures or set(answers) != set(targets):
            silent = sorted(set(targets) - set(answers))
            raise LbpairError(f"{fun} did not succeed on {', '.join(silent)}: {failures}")
        return answers

    def silent(self, minion):
        """
        Whether ``minion`` left a job unanswered less than ``SILENT_WINDOW`` seconds ago: its
        events are then claims at once, so that a flood of them cannot hold every reactor
        thread waiting for a node that does not answer.
        """
        return self.clock() - self.silence.silent_since(minion) < SILENT_WINDOW

    def heard(self, minion, answers, failures):
        """
        Note whether ``minion`` answered a job (a failed job is an answer too: "... is not
        available" before ``saltutil.sync_all``) or left it unanswered (no return, Salt's
        ``{"failed": True}`` for a minion that did not return: no ``ret``, or its "Minion did not
        return. [No response]").
        """
        failure = failures.get(minion)
        answered = answers.get(minion) is not None or (failure is not None and not str(failure).startswith(NO_RETURN))
        self.silence.note_silence(minion, None if answered else self.clock())
