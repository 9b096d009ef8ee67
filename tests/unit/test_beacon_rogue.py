"""The beacon's ``rogue_vrrp`` warnings: each sender the firewall dropped VRRP from, once, read every few seconds."""

from saltext.lbpair.node import beacon
from tests.unit.test_beacon import JournalInMemory, runner_without_bus


class Record:
    """The firewall's record of rogue senders as the beacon reads it; counts the reads."""

    def __init__(self, *senders):
        self.senders, self.reads = list(senders), 0

    def __call__(self):
        self.reads += 1
        return list(self.senders)


def addresses(warnings):
    return [warning["message"].split()[2].rstrip(",") for warning in warnings]


def test_each_new_sender_is_reported_once_with_its_address():
    record = Record("192.0.2.66")
    watch = beacon.RogueWatch(record, reported=set())
    first = watch.warnings(now=0.0)
    assert [(w["tag"], w["code"]) for w in first] == [("warning/rogue_vrrp", "rogue_vrrp")]
    assert "192.0.2.66" in first[0]["message"]
    record.senders.append("192.0.2.67")
    assert addresses(watch.warnings(now=10.0)) == ["192.0.2.67"]
    assert watch.warnings(now=20.0) == []


def test_the_record_is_read_at_most_every_few_seconds():
    record = Record("192.0.2.66")
    watch = beacon.RogueWatch(record, reported=set())
    for now in (0.0, 1.0, 2.0, beacon.ROGUE_INTERVAL - 0.1):
        watch.warnings(now=now)
    assert record.reads == 1
    watch.warnings(now=beacon.ROGUE_INTERVAL)
    assert record.reads == 2


def test_a_new_load_of_the_beacon_does_not_report_again():
    reported = set()
    assert addresses(beacon.RogueWatch(Record("192.0.2.66"), reported).warnings(now=0.0)) == ["192.0.2.66"]
    assert beacon.RogueWatch(Record("192.0.2.66"), reported).warnings(now=0.0) == []


def test_a_sender_the_record_forgot_is_reported_when_it_comes_back():
    record = Record("192.0.2.66")
    watch = beacon.RogueWatch(record, reported=set())
    watch.warnings(now=0.0)
    record.senders.clear()
    assert watch.warnings(now=10.0) == []
    record.senders.append("192.0.2.66")
    assert addresses(watch.warnings(now=20.0)) == ["192.0.2.66"]


def test_a_record_that_cannot_be_read_is_no_warning_and_is_tried_again():
    def broken():
        raise OSError("nft: not found")

    watch = beacon.RogueWatch(broken, reported=set())
    assert watch.warnings(now=0.0) == []
    watch.senders = Record("192.0.2.66")
    assert addresses(watch.warnings(now=10.0)) == ["192.0.2.66"]


def test_a_runner_without_a_pair_model_reads_no_record():
    runner = runner_without_bus(JournalInMemory())
    assert runner.rogue_warnings() == []
    runner.close()
