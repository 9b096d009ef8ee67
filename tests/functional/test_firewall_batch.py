"""
An nftables change is one ``nft -f`` batch, so the chain holds all of it or none of it.
In a throwaway namespace, an ``allow`` that replaces four rules (the pair's interface moves:
its record and drop rules go, new ones come) is given a batch whose last line the kernel
refuses, and is killed at moments spread over nft's run: each time the chain holds the whole
old rule set or the whole new one, never a mix.
"""

import copy
import os
import signal
import threading
import time

import pytest

from lab import netns
from saltext.lbpair.core.errors import LbpairError
from saltext.lbpair.model import pillar
from saltext.lbpair.node import firewall
from saltext.lbpair.node.firewall import nftables

NAMESPACE = "lbpair-fwbatch"
CHAIN = ["inet", "filter", "input"]
#: nft, but a batch on stdin is first kept in a file, nft's pid written down and a moment given (0.05 s),
#: so the test can kill it before nft starts, while it runs or after it is done
NFT_WRAPPER = """#!/bin/sh
if [ "$1" = "-f" ]; then
    cat > "$NFT_SPY/batch"
    echo $$ > "$NFT_SPY/pid.tmp" && mv "$NFT_SPY/pid.tmp" "$NFT_SPY/pid"
    sleep {pause}
    exec {nft} -f "$NFT_SPY/batch"
fi
exec {nft} "$@"
"""
PAUSE = 0.05
#: when to kill nft after its pid is known, in seconds: before it starts, every 0.5 ms through its run (a few ms), long after
KILL_AFTER = [0, *(PAUSE + step * 0.0005 for step in range(40)), 0.5]


@pytest.fixture
def namespace():
    with netns.temporary(NAMESPACE):
        yield NAMESPACE


@pytest.fixture
def pillars(seed_pillar):
    """The pair's pillar with nftables (old), and the same with the VRRP interface moved to eth1 (new)."""
    seed_pillar["firewall"] = {"backend": "nftables"}
    moved = copy.deepcopy(seed_pillar)
    moved["vrrp"]["interface"] = "eth1"
    return seed_pillar, moved


def model(lbpair):
    return pillar.for_node(pillar.normalize(lbpair), "lb1")


def chain_comments():
    """The comments of the chain's rules, in order (every rule here is lbpair's)."""
    listing = netns.run(NAMESPACE, ["nft", "-j", "list", "chain", *CHAIN], timeout=10).stdout
    return [comment for _, comment in nftables.chain_rules(listing)]


def reset_to(lbpair):
    """The chain with the rules of ``lbpair`` only."""
    netns.run(NAMESPACE, ["nft", "flush", "chain", *CHAIN], check=False, timeout=10)
    with netns.enter(NAMESPACE):
        firewall.allow(model(lbpair))
    return chain_comments()


def test_a_batch_the_kernel_refuses_changes_nothing(namespace, pillars, monkeypatch):
    old, new = pillars
    before = reset_to(old)
    listing = netns.run(NAMESPACE, ["nft", "-a", "list", "chain", *CHAIN], timeout=10).stdout
    real = nftables.run_batch
    # valid syntax, refused by the kernel at the end of the transaction: no such rule
    monkeypatch.setattr(nftables, "run_batch", lambda lines: real([*lines, f"delete rule {' '.join(CHAIN)} handle 999999"]))
    with netns.enter(NAMESPACE), pytest.raises(LbpairError, match="No such file or directory"):
        firewall.allow(model(new))
    assert netns.run(NAMESPACE, ["nft", "-a", "list", "chain", *CHAIN], timeout=10).stdout == listing
    monkeypatch.undo()
    with netns.enter(NAMESPACE):
        assert len(firewall.allow(model(new))["removed"]) == 4
    assert chain_comments() != before


@pytest.fixture
def nft_spy(tmp_path, monkeypatch):
    """``nft`` on PATH is the wrapper; returns its folder, where each batch's pid appears."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "nft"
    wrapper.write_text(NFT_WRAPPER.format(nft="/usr/sbin/nft", pause=PAUSE))
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("NFT_SPY", str(tmp_path))
    return tmp_path


def _allow_in_thread(lbpair, outcome):
    with netns.enter(NAMESPACE):
        try:
            outcome["result"] = firewall.allow(model(lbpair))
        except LbpairError as exc:
            outcome["error"] = str(exc)


def _kill_when_started(spy, delay):
    """Wait for the batch's nft to start, then kill it ``delay`` seconds later (if it still runs)."""
    pid_file = spy / "pid"
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.0002)
    pid = int(pid_file.read_text())
    time.sleep(delay)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if b"nft" not in cmdline.read():
                return
        os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):  # done already
        pass


def test_nft_killed_midway_leaves_the_old_or_the_new_rule_set(namespace, pillars, nft_spy):
    old, new = pillars
    new_rules = reset_to(new)
    old_rules = reset_to(old)
    assert len(set(old_rules) - set(new_rules)) == 4
    seen = []
    for delay in KILL_AFTER:
        (nft_spy / "pid").unlink(missing_ok=True)
        outcome = {}
        change = threading.Thread(target=_allow_in_thread, args=(new, outcome))
        change.start()
        _kill_when_started(nft_spy, delay)
        change.join(timeout=30)
        assert not change.is_alive()
        after = chain_comments()
        assert after in (old_rules, new_rules), (delay, after)
        seen.append("new" if after == new_rules else "old")
        if after == old_rules:
            assert "error" in outcome, outcome  # the change failed, and says so (killed after the commit, it may say so too)
        reset_to(old)
    assert {"old", "new"} <= set(seen), seen  # the kills fell before the commit and after it
