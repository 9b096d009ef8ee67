"""
Holding new connections during a planned hand-over, with the real iptables and nft in a
throwaway network namespace: while held, a client's SYN to a VIP is dropped (its connect
times out, it is not refused); once released, it connects; a second release changes nothing.
"""

import pytest

from lab import netns
from saltext.lbpair.node import firewall, handover, track
from saltext.lbpair.node.firewall import holds
from tests.functional.rigs import connects, listening_on

NAMESPACE = "lbpair-handover"
VIP, PORT = "203.0.113.10", 8080
VIP6 = "2001:db8::10"
LISTINGS = {
    "iptables": [["iptables", "-S", "INPUT"], ["ip6tables", "-S", "INPUT"]],
    "nftables": [["nft", "list", "chain", "inet", "filter", "input"]],
}


@pytest.fixture
def listening_vip():
    with listening_on(NAMESPACE, [VIP], PORT):
        yield


def _connects():
    return connects(NAMESPACE, VIP, PORT)


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_new_connections_are_held_then_let_through(listening_vip, backend):
    model = {"firewall": {"backend": backend, "nft_table": "inet filter", "nft_chain": "input"}}
    assert _connects()
    with netns.enter(NAMESPACE):
        firewall.hold_new_connections(model, [VIP])
    assert not _connects()  # dropped, not refused: the client will send its SYN again
    with netns.enter(NAMESPACE):
        firewall.release_new_connections(model)
        firewall.release_new_connections(model)
    assert _connects()


def test_a_handover_cut_short_is_undone(listening_vip, tmp_path):
    """The minion killed midway: FAULT asked and new connections held; the next highstate undoes both."""
    model = {"firewall": {"backend": "iptables"}, "services": {"foo": {"vip": VIP}}}
    track.write(track.HANDOVER, 1, str(tmp_path))
    lock = str(tmp_path / "handover.lock")
    with netns.enter(NAMESPACE):
        firewall.hold_new_connections(model, [VIP])
        predicted = handover.undo_interrupted(model, test=True, lock=lock, track_directory=str(tmp_path))
    assert predicted["result"] is None and predicted["changes"] == {"interrupted_handover": ["handover track file"]}
    assert track.read(track.HANDOVER, str(tmp_path)) == 1 and not _connects()  # test mode changed nothing
    with netns.enter(NAMESPACE):
        undone = handover.undo_interrupted(model, lock=lock, track_directory=str(tmp_path))
        again = handover.undo_interrupted(model, lock=lock, track_directory=str(tmp_path))
    assert undone == {
        "result": True, "comment": "a handover cut short is undone",
        "changes": {"interrupted_handover": ["handover track file", "held new connections"]},
    }  # fmt: skip
    assert again == {"result": True, "comment": "no handover was cut short", "changes": {}}
    assert track.read(track.HANDOVER, str(tmp_path)) == 0 and _connects()


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_hold_for_vips_since_changed_is_released(listening_vip, tmp_path, backend):
    """A crash left holds (IPv4 and IPv6) for VIPs no longer in the pillar: the next highstate finds them by their comment."""
    model = {"firewall": {"backend": backend, "nft_table": "inet filter", "nft_chain": "input"}}
    with netns.enter(NAMESPACE):
        firewall.hold_new_connections(model, [VIP, VIP6])
    assert not _connects()
    model["services"] = {"bar": {"vip": "203.0.113.20"}}
    with netns.enter(NAMESPACE):
        undone = handover.undo_interrupted(model, lock=str(tmp_path / "handover.lock"), track_directory=str(tmp_path))
    assert undone["changes"] == {"interrupted_handover": ["held new connections"]} and _connects()
    for listing in LISTINGS[backend]:
        assert holds.HOLD_COMMENT not in netns.run(NAMESPACE, listing).stdout
