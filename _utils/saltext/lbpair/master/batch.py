"""
Beacon events reacted to in one batch, whatever pairs they come from: each is screened by its
pair's intake, then ONE journal job asks all their nodes at once (each node answers from its own
seq), ONE status job (and a second for those that did not answer at once) reads the state of every
pair a confirmed transition belongs to, and each pair's crew records and reacts with those returns.

In a storm (a switch reboot: many pairs fail over in the same second) this is what keeps the
master's cost per event low: a Salt job costs the master far more than the work around it, and
jobs for each event would grow with the events squared (every job's listener reads every return).
"""

import logging

from saltext.lbpair.master.pair_monitor import read_statuses
from saltext.lbpair.master.transitions import JOURNAL_FUNCTION, TAG_RE, log_text, unconfirmed_reason

log = logging.getLogger(__name__)


def react(events, crew_of, client, clock):
    """
    The outcome of each of ``events`` (``[(tag, data)]``), in their order. ``crew_of(minion)`` gives
    ``(crew, None)`` or ``(None, why not)``; ``client`` (a :class:`~saltext.lbpair.master.node_client.NodeClient`)
    asks any node.
    """
    requested_at = clock()
    outcomes = [None] * len(events)
    waiting = []  # (index, crew, tag, data, minion): transitions their node's journal must confirm
    for index, (tag, data) in enumerate(events):
        parts = TAG_RE.fullmatch(tag or "")
        crew, problem = crew_of(parts["minion"]) if parts else (None, f"unexpected tag {tag!r}")
        if crew is None:
            log.warning("lbpair: ignoring beacon event %s: %s", log_text(tag), log_text(problem))
            outcomes[index] = {"ignored": problem}
            continue
        outcomes[index], minion = crew.intake.screen(tag, data, requested_at)
        if minion is None:
            continue
        if any(other == minion and data["seq"] == seen["seq"] for _, _, _, seen, other in waiting):
            outcomes[index] = {"duplicate": [minion, data["seq"]]}  # the same event twice in one batch
        else:
            waiting.append((index, crew, tag, data, minion))
    found = _confirm(waiting, outcomes, client)
    recorded = {crew: (indexed, *crew.intake.record([record for _, record, _ in indexed])) for crew, indexed in found.items()}
    passive = {record.key for indexed in found.values() for _, record, acting in indexed if not acting}
    nodes = sorted({node for crew, (_, new, _) in recorded.items() for record in new if record.key not in passive
                    for node in crew.settings["nodes"]})  # fmt: skip
    statuses = read_statuses(client, nodes) if nodes else {}
    for crew, (indexed, new, error) in recorded.items():
        reactions = crew.intake.react(new, requested_at, error, statuses, passive)
        by_seq = {(reaction["recorded"]["minion"], reaction["recorded"]["seq"]): reaction for reaction in reactions}
        for index, record, _ in indexed:
            outcomes[index] = by_seq.get((record.minion, record.seq)) or {"duplicate": [record.minion, record.seq]}
    return outcomes


def _confirm(waiting, outcomes, client):
    """
    Ask the journals of the nodes ``waiting`` names (those not known silent) in one job; fill the
    outcomes of the events refuted or claimed; ``{crew: [(index, record)]}`` of those confirmed.
    """
    silent = {minion for *_, minion in waiting if client.silent(minion)}
    since_of = {}
    for _, _, _, data, minion in waiting:
        if minion not in silent:
            since_of[minion] = min(since_of.get(minion, data["seq"] - 1), data["seq"] - 1)
    answers, failures = journals(client, since_of)
    for minion in since_of:
        client.heard(minion, answers, failures)
    found = {}
    for index, crew, tag, data, minion in waiting:
        why = unconfirmed_reason(minion in silent, failures.get(minion))
        outcomes[index], confirmed = crew.intake.confirm(tag, data, answers.get(minion), why)
        if confirmed is not None:
            found.setdefault(crew, []).append((index, *confirmed))
    return found


def journals(client, since_of):
    """
    ``(answers, failures)`` of one journal job to the nodes of ``since_of`` (``{minion: seq}``): each
    answers with what it journalled after its own seq (one node alone: ``since``), each entry claimed
    for this master (:func:`~saltext.lbpair.master.intake.acting`).
    """
    if not since_of:
        return {}, {}
    kwarg = {"since": min(since_of.values()), "claim": True}
    if len(since_of) > 1:
        kwarg["since_of"] = since_of
    return client.answers_soon(sorted(since_of), JOURNAL_FUNCTION, kwarg)
