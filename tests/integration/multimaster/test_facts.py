"""
Facts about Salt 3008's hot multi-master (``master: [m1, m2]``) that lbpair's design for two
masters rests on: where the beacon's events go while one master is down, where job returns go,
what a job learns about the masters. Each test measures one and prints its numbers
(``pytest -s``); docs/facts-multimaster.md records them.

The tests run in order on one pair of masters and one minion (module scope), and leave both
masters running.
"""

import time

import pytest

from tests.integration.multimaster.conftest import MINION, minion_factory

pytestmark = [pytest.mark.timeout(300)]

OUTAGE = 8  # s a master stays down
RESUME_TIMEOUT = 90  # s at most until a master back gets events again


def ticks(listener, master, since, minion_id=MINION):
    """``[(seq, arrived, sent)]`` of the ``mm_tick`` events that reached *master* since *since*, by arrival."""
    events = listener.get_events([(master.id, f"salt/beacon/{minion_id}/mm_tick/tick")], after_time=since)
    return sorted(((event.data["seq"], event.stamp.timestamp(), event.data["time"]) for event in events), key=lambda t: t[1])


def seqs(listener, master, since, minion_id=MINION):
    return [seq for seq, _, _ in ticks(listener, master, since, minion_id)]


def start_events(listener, master, since, minion_id=MINION):
    """When ``salt/minion/<id>/start`` reached *master* since *since* (epoch)."""
    pattern = (master.id, f"salt/minion/{minion_id}/start")
    return [event.stamp.timestamp() for event in listener.get_events([pattern], after_time=since)]


def last_seq(listener, masters, since):
    return max((seq for master in masters for seq in seqs(listener, master, since)), default=0)


def wait_for_tick(listener, masters, since, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(seqs(listener, master, since) for master in masters):
            return
        time.sleep(0.2)
    raise AssertionError(f"no mm_tick event on every master within {timeout} s")


def wait_for_fresh_tick(listener, master, since, timeout):
    """Until an event sent after *since* reaches *master* (or *timeout* s)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(sent > since for _, _, sent in ticks(listener, master, since)):
            return
        time.sleep(0.2)


def report(fact, **numbers):
    print(f"\nFACT {fact}: " + ", ".join(f"{key}={value}" for key, value in numbers.items()))


def test_each_beacon_event_reaches_both_masters_once(event_listener, master_1, master_2, minion):
    since = time.time()
    time.sleep(5)
    got = {master.id: seqs(event_listener, master, since) for master in (master_1, master_2)}
    report("both up", **got)
    for master_seqs in got.values():
        assert len(master_seqs) >= 4
        assert len(master_seqs) == len(set(master_seqs))
    common = set(got[master_1.id]) & set(got[master_2.id])
    assert len(common) >= len(got[master_1.id]) - 1  # the window's edges may cut one


def outage(listener, down, up):
    """Stop *down* for :data:`OUTAGE` s, start it, wait for its first fresh event; the numbers."""
    begin = time.time()
    wait_for_tick(listener, (down, up), begin)
    stopped = time.time()
    down.terminate()
    time.sleep(OUTAGE)
    seq_at_start = last_seq(listener, (up,), begin)
    restarting = time.time()
    down.start()
    started = time.time()
    wait_for_fresh_tick(listener, down, restarting, timeout=RESUME_TIMEOUT)
    time.sleep(2)
    at_down = ticks(listener, down, begin)
    at_up = ticks(listener, up, begin)
    during = [seq for seq, _, sent in at_up if stopped < sent < restarting]
    sent_during = set(range(min(during), seq_at_start + 1))
    fresh = [arrived for _, arrived, sent in at_down if sent > restarting]
    starts = start_events(listener, down, restarting)
    numbers = {
        "outage_events": len(sent_during),
        "missed_by_up": sorted(sent_during - {seq for seq, _, _ in at_up}),
        "max_delay_at_up": round(max(arrived - sent for seq, arrived, sent in at_up if seq in sent_during), 2),
        "reached_down_late": sorted({seq for seq, _, _ in at_down} & sent_during),
        "fresh_after_start_s": round(min(fresh) - restarting, 1) if fresh else None,
        "minion_start_after_s": [round(stamp - restarting, 1) for stamp in starts],
        "master_start_took_s": round(started - restarting, 1),
        "dups_at_down": len(at_down) - len({seq for seq, _, _ in at_down}),
        "dups_at_up": len(at_up) - len({seq for seq, _, _ in at_up}),
    }
    report(f"{down.id} down {OUTAGE} s", **numbers)
    return numbers


@pytest.mark.parametrize("which", ["first", "second"])
def test_a_master_down_the_other_gets_every_event(event_listener, master_1, master_2, minion, which):
    down, up = (master_1, master_2) if which == "first" else (master_2, master_1)
    numbers = outage(event_listener, down, up)
    # The beacons run in the first master's Minion object, yet keep running while m1 is down.
    assert numbers["outage_events"] >= OUTAGE - 2
    assert numbers["missed_by_up"] == []
    assert numbers["max_delay_at_up"] < 1
    assert numbers["dups_at_up"] == numbers["dups_at_down"] == 0
    # Back: the minion announces itself to it again and its events flow again.
    assert numbers["fresh_after_start_s"] is not None
    assert len(numbers["minion_start_after_s"]) == 1


def job_returns(listener, master, since):
    """The ``test.echo`` returns of the minion that reached *master*'s bus since *since*."""
    events = listener.get_events([(master.id, f"salt/job/*/ret/{MINION}")], after_time=since)
    return [event for event in events if event.data.get("fun") == "test.echo"]


@pytest.mark.parametrize("first_down", [False, True], ids=["both-up", "first-down"])
def test_a_job_returns_to_the_master_that_published_it_only(event_listener, master_1, master_2, minion, first_down):
    since = time.time()
    if first_down:
        master_1.terminate()
    try:
        ret = master_2.salt_cli(timeout=60).run("--timeout=15", "test.echo", "hi", minion_tgt=MINION)
        time.sleep(2)
    finally:
        if first_down:
            master_1.start()
    assert ret.data == "hi", ret
    at_1, at_2 = (job_returns(event_listener, master, since) for master in (master_1, master_2))
    report("job from m2" + (" with m1 down" if first_down else ""), returns_at_m1=len(at_1), returns_at_m2=len(at_2))
    assert len(at_2) == 1 and at_1 == []


def test_a_job_names_the_master_that_published_it(event_listener, master_1, master_2, minion):
    answers = {}
    for master in (master_1, master_2):
        cli = master.salt_cli(timeout=60)
        answers[master.id] = {
            "config.get master": cli.run("--timeout=15", "config.get", "master", minion_tgt=MINION).data,
            "status.master m1": cli.run("--timeout=15", "status.master", "127.0.0.1", minion_tgt=MINION).data,
            "status.master m2": cli.run("--timeout=15", "status.master", "127.0.0.2", minion_tgt=MINION).data,
        }
    with master_1.stopped():
        time.sleep(1)
        cli = master_2.salt_cli(timeout=60)
        answers["m2, m1 down"] = {
            "status.master m1": cli.run("--timeout=15", "status.master", "127.0.0.1", minion_tgt=MINION).data,
            "status.master m2": cli.run("--timeout=15", "status.master", "127.0.0.2", minion_tgt=MINION).data,
        }
    report("what a job learns", **answers)
    assert answers[master_1.id]["config.get master"] == "127.0.0.1"
    assert answers[master_2.id]["config.get master"] == "127.0.0.2"
    for name in (master_1.id, master_2.id):
        assert answers[name]["status.master m1"] is True and answers[name]["status.master m2"] is True
    assert answers["m2, m1 down"] == {"status.master m1": False, "status.master m2": True}


LATE_OUTAGE = 30  # s m1 stays down after the late minion started


@pytest.mark.parametrize("before_connect", [False, True], ids=["default", "beacons_before_connect"])
def test_a_minion_started_while_the_first_master_is_down(event_listener, master_1, master_2, minion, before_connect):
    minion_id = f"lbpair-mm-late-{int(before_connect)}"
    options = {"beacons_before_connect": True} if before_connect else {}
    late = minion_factory(master_1, master_2, minion_id, **options)
    with late.started():
        with master_1.stopped():
            late.terminate()
            late.start()  # checked on m2's bus: it answers m2
            started = time.time()
            time.sleep(LATE_OUTAGE)
            ping = master_2.salt_cli(timeout=60).run("--timeout=15", "test.ping", minion_tgt=minion_id).data
            during = ticks(event_listener, master_2, started, minion_id)
            restarting = time.time()
        wait_for_fresh_tick(event_listener, master_1, restarting, RESUME_TIMEOUT)
        resumed = round(time.time() - restarting, 1)
        time.sleep(3)
        after = {master.id: seqs(event_listener, master, restarting, minion_id) for master in (master_1, master_2)}
    per_10s = [sum(1 for _, _, sent in during if started + i * 10 <= sent < started + (i + 1) * 10) for i in range(LATE_OUTAGE // 10)]
    report(
        "minion started with m1 down" + (" (beacons_before_connect)" if before_connect else ""),
        answers_m2=ping, ticks_at_m2_per_10s=per_10s, m1_gets_ticks_after_s=resumed, after_m1_back=after,
    )
    assert ping is True
    if before_connect:
        assert all(count >= 8 for count in per_10s)
    else:
        assert per_10s == [0] * len(per_10s)
    assert after[master_1.id] and after[master_2.id]
