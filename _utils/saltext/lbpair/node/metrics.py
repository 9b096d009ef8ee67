"""
The node's facts as Prometheus metric families, named and labelled as lbpair's metrics contract
says (docs/metrics.md): every family carries ``pair`` and ``node``; a VRRP instance is
``vrrp_instance`` (Prometheus owns ``instance``); a state is one 0/1 gauge per keepalived state,
never a state label, so that ``sum by (pair, vrrp_instance) (lbpair_vrrp_state_master)`` counts
the MASTERs of an instance across the pair.

The facts (:class:`NodeFacts`) are gathered by :mod:`saltext.lbpair.node.metrics_sources` and the
beacon (:mod:`saltext.lbpair.node.beacon`); this module only lays them out. Instance and
certificate names come from keepalived and the pillar: they are label values, which
:mod:`saltext.lbpair.core.prometheus_text` escapes.

.. code-block:: python

    text = render(families(NodeFacts(pair="web", node="lb1", states={"lbpair_51": "MASTER"})))
"""

from dataclasses import dataclass, field

from saltext.lbpair.core.prometheus_text import Family, Sample
from saltext.lbpair.model.track_rules import NAMES as TRACK_FILES

#: keepalived's states that have a gauge of their own, in the contract's order
STATES = ("MASTER", "BACKUP", "FAULT", "INIT", "STOP")
UNKNOWN = "UNKNOWN"
#: a state keepalived sends for an instance a reload removed: the instance has no gauges any more
DELETED = "DELETED"
WRITTEN = "lbpair_metrics_written_timestamp_seconds"


@dataclass(frozen=True)
class NodeFacts:
    """
    What the node's metrics say. ``states``: ``{instance: STATE}`` as the beacon last saw them;
    ``transitions``: ``{(instance, STATE): count}`` since the minion started; ``last_transition``:
    ``{instance: epoch seconds}``; ``priorities``: ``{instance: effective priority}`` (keepalived's
    JSON dump); ``haproxy_up`` and ``rogue_senders`` are None while unknown (no sample);
    ``track_files``: ``{name: set}``; ``certificates``: ``{certificate: notAfter, epoch seconds}``.
    """

    pair: str
    node: str
    states: dict = field(default_factory=dict)
    transitions: dict = field(default_factory=dict)
    last_transition: dict = field(default_factory=dict)
    priorities: dict = field(default_factory=dict)
    dbus: bool = False
    keepalived_up: bool = False
    haproxy_up: bool = None
    track_files: dict = field(default_factory=dict)
    rogue_senders: int = None
    certificates: dict = field(default_factory=dict)


def current_state(state, keepalived_up):
    """
    The state a gauge shows for an instance last seen in ``state``: a stopped keepalived sends STOP
    for each instance, but a killed one sends nothing, so without keepalived any other state is
    UNKNOWN (a dead node is not reported as MASTER).
    """
    if state not in STATES:
        return UNKNOWN
    return state if keepalived_up or state == "STOP" else UNKNOWN


def state_gauge(state):
    """The gauge of a state: ``lbpair_vrrp_state_master``, ..., ``lbpair_vrrp_state_unknown``."""
    return f"lbpair_vrrp_state_{state.lower()}"


def _instances(facts):
    return sorted(name for name, state in facts.states.items() if state != DELETED)


def _state_families(facts, base):
    shown = {name: current_state(facts.states[name], facts.keepalived_up) for name in _instances(facts)}
    return [
        Family(state_gauge(state), "gauge", f"1 if the VRRP instance is in keepalived's {state} state on this node, else 0.",
               [Sample({**base, "vrrp_instance": name}, int(shown[name] == state)) for name in shown])
        for state in (*STATES, UNKNOWN)
    ]  # fmt: skip


def _transition_family(facts, base):
    """Every state of every instance, counted or not: a series that starts at 0 lets ``increase()`` see its first step."""
    instances = sorted(set(_instances(facts)) | {name for name, _state in facts.transitions})
    states = [*STATES, *sorted({state for _name, state in facts.transitions} - set(STATES))]
    samples = [
        Sample({**base, "vrrp_instance": name, "state": state}, facts.transitions.get((name, state), 0))
        for name in instances
        for state in states
    ]
    help_text = "VRRP transitions into each state seen by the beacon since the minion started."
    return Family("lbpair_vrrp_transitions_total", "counter", help_text, samples)


def _per_instance(name, help_text, values, base):
    return Family(name, "gauge", help_text, [Sample({**base, "vrrp_instance": key}, values[key]) for key in sorted(values)])


def _single(name, help_text, value, base):
    return Family(name, "gauge", help_text, [] if value is None else [Sample(dict(base), int(value))])


def _base(facts):
    return {"pair": facts.pair, "node": facts.node}


def written_family(facts, written):
    """``lbpair_metrics_written_timestamp_seconds``: when the file was written (``written``, epoch seconds); the file's last family."""
    return Family(WRITTEN, "gauge", "When the beacon last wrote this file.", [Sample(_base(facts), written)])


def families(facts):
    """
    The node's metric families but :func:`written_family`, in the contract's order. A family
    without a sample (nothing known yet, no certificate) is left out.
    """
    base = _base(facts)
    found = [
        *_state_families(facts, base),
        _transition_family(facts, base),
        _per_instance("lbpair_vrrp_last_transition_timestamp_seconds", "When the beacon saw the instance's last transition.",
                      {name: facts.last_transition[name] for name in _instances(facts) if name in facts.last_transition}, base),
        _per_instance("lbpair_vrrp_effective_priority", "The instance's effective priority on this node (keepalived's JSON dump).",
                      {name: facts.priorities[name] for name in _instances(facts) if name in facts.priorities}, base),
        _single("lbpair_beacon_dbus", "1 if the beacon follows keepalived over D-Bus, 0 if through its JSON dump.", facts.dbus, base),
        _single("lbpair_keepalived_up", "1 if keepalived's main process runs.", facts.keepalived_up, base),
        _single("lbpair_haproxy_up", "1 if HAProxy answers on its stats socket.", facts.haproxy_up, base),
        Family("lbpair_track_file_set", "gauge", "1 if lbpair's keepalived track file holds a non-zero value.",
               [Sample({**base, "file": name}, int(bool(facts.track_files.get(name)))) for name in TRACK_FILES]),
        _single("lbpair_rogue_vrrp_senders", "Distinct senders of VRRP for the pair's VRIDs that the firewall dropped.",
              facts.rogue_senders, base),
        Family("lbpair_certificate_expiry_timestamp_seconds", "gauge", "When a service's certificate HAProxy serves expires (notAfter).",
               [Sample({**base, "certificate": name}, facts.certificates[name]) for name in sorted(facts.certificates)]),
    ]  # fmt: skip
    return [family for family in found if family.samples]
