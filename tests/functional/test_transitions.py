"""
``lbpair_keepalived.transitions`` through Salt's loader: the node reads after its own entry of
``since_of`` (its minion id), and claims in the name of the job's master (its ``master`` option).
"""

import os

import pytest
from salt.exceptions import SaltInvocationError

from saltext.lbpair.core import store
from saltext.lbpair.node.journal import Journal
from saltext.lbpair.node.journal_claims import Claims

OTHER_MASTER = "192.0.2.99"


@pytest.fixture
def journal(loaders):
    journal = Journal.from_options({}, loaders.opts["cachedir"])
    for state in ("BACKUP", "MASTER", "BACKUP"):
        journal.append({"instance": "lbpair_51", "state": state})
    return journal


def test_each_node_reads_after_its_own_seq_without_claims(modules, journal):
    transitions = modules.lbpair_keepalived.transitions
    assert [entry["seq"] for entry in transitions(since_of={"lb1": 1, "lb2": 0})] == [2, 3]
    entries = transitions(since=2, since_of={"lb2": 0})
    assert [entry["seq"] for entry in entries] == [3] and "acting" not in entries[0]
    assert transitions() == journal.since(0)
    assert not os.path.exists(Claims(journal).path)


def test_a_claim_is_made_in_the_name_of_the_jobs_master(modules, loaders, journal):
    claims = Claims(journal)
    store.write_json(claims.path, {"2": OTHER_MASTER})
    entries = modules.lbpair_keepalived.transitions(since_of={"lb1": 1}, claim=True)
    assert [(entry["seq"], entry["acting"]) for entry in entries] == [(2, False), (3, True)]
    assert store.read_json(claims.path, {}) == {"2": OTHER_MASTER, "3": loaders.opts["master"]}


def test_a_bad_since_of_is_refused_naming_its_key(modules, journal):
    with pytest.raises(SaltInvocationError, match="since_of:lb2"):
        modules.lbpair_keepalived.transitions(since_of={"lb1": 1, "lb2": "1; reboot"})
