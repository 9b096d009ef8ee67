"""
The master's records, notices and queued work as types, at the boundaries where they are built,
stored and read back: the kinds of history record (:class:`RecordKind`), a VRRP transition
(:class:`Transition`), one constructor per other kind of record (JSON mappings, as the history
holds them), a notification (:class:`Notice`, its :class:`Severity`) and a piece of work left for
later (:class:`Task`, its :class:`TaskKind`).

The JSON stays what it was: ``Transition.from_json(data).to_json() == data`` for every
transition the history holds, old versions' included (their keys and their order are kept).
"""

import dataclasses
import enum
import time

from saltext.lbpair.core.times import iso_utc
from saltext.lbpair.model.keepalived_model import VrrpState

UNKNOWN_STATE = "UNKNOWN"  # the previous state of a transition its node did not know


class RecordKind(enum.StrEnum):
    """The ``kind`` of a history record; equal to its value as text."""

    TRANSITION = "transition"  # a VRRP transition its node confirmed
    CLAIM = "claim"  # an event its node did not confirm
    CLAIM_SETTLED = "claim_settled"  # what the node's journal said of a claim
    WARNING = "warning"  # a node's beacon warned, and its status confirmed it
    DNS = "dns"  # the outcome of pointing DNS at a node
    SPLIT_BRAIN = "split_brain"  # an alarm: several MASTERs
    NO_MASTER = "no_master"  # an alarm: no MASTER
    STEP_FAILED = "step_failed"  # a step of a reaction failed
    PLANNED = "planned"  # a planned move (switchover, rebalance, failback)
    MAINTENANCE = "maintenance"  # a node taken out or released
    CERTIFICATE = "certificate"  # a certificate expires or staples a stale OCSP response
    DRAIN = "drain"  # a backend server drained on the pair's nodes
    READY = "ready"  # a backend server set back to ready on the pair's nodes

    @classmethod
    def of(cls, record):
        """The kind of ``record`` (a JSON mapping), or ``None`` when it names no kind this version knows."""
        try:
            return cls(record.get("kind"))
        except ValueError:
            return None


class Seen(enum.StrEnum):
    """How the master learnt of a transition; equal to its value as text."""

    LIVE = "live"  # reported by its node's event
    LATE = "late"  # pulled from its node's journal when it reconnected


class Problem(enum.StrEnum):
    """What the pair monitor finds wrong with an instance; the kind of its alarm's record."""

    SPLIT_BRAIN = RecordKind.SPLIT_BRAIN.value
    NO_MASTER = RecordKind.NO_MASTER.value


def scoped(pair, instance):
    """
    A VRRP instance of a pair, as the reaction state keys it (instance names repeat across pairs):
    ``"web/lbpair_51"``; without a pair (an older version's work), the instance alone.
    """
    return instance if pair is None else f"{pair}/{instance}"


def unscoped(key):
    """``(pair, instance)`` of a :func:`scoped` key; ``(None, key)`` for a key an older version kept (one pair, no name)."""
    pair, _, instance = key.rpartition("/")
    return pair or None, instance


def reaction_key(minion, seq):
    """The reaction to a transition, named by its node and sequence number: ``"lb2:7"``."""
    return f"{minion}:{seq}"


def change(record):
    """A transition (or its brief) in a few words: ``lb2 BACKUP -> MASTER``."""
    return f"{record['minion']} {record.get('previous_state', '?')} -> {record.get('state')}"


#: a transition's keys in the order this version writes them (:data:`OPTIONAL_KEYS` only when set)
TRANSITION_KEYS = (
    "kind", "pair", "minion", "seq", "instance", "vrid", "interface", "state", "previous_state", "vips", "source", "at",
    "recorded_at", "seen", "confirmed", "planned",
)  # fmt: skip
#: the keys a transition of this version has only when they say something (``planned: False`` says nothing)
OPTIONAL_KEYS = ("pair", "planned")
#: the keys of a transition that a reaction's return, flap damping and the claims show
BRIEF_KEYS = ("minion", "seq", "instance", "state", "previous_state", "at", "seen", "pair")


@dataclasses.dataclass(frozen=True)
class Transition:
    """
    A VRRP transition of the history. ``seen`` is a :class:`Seen`; ``confirmed`` whether its
    node vouched for it (``None``: a record of an old version, which did not say). ``keys`` are the
    keys of the JSON it was read from, in order (``None``: this version's), and ``extra`` those this
    version does not know: both only serve to give back exactly the JSON read.
    """

    minion: str
    seq: int
    pair: str = None
    instance: str = None
    vrid: int = None
    interface: str = None
    state: str = None
    previous_state: str = None
    vips: tuple = ()
    source: str = None
    at: str = None
    recorded_at: str = None
    seen: str = None
    confirmed: bool = None
    planned: bool = False
    keys: tuple = dataclasses.field(default=None, repr=False, compare=False)
    extra: dict = dataclasses.field(default_factory=dict, repr=False, compare=False, hash=False)

    @classmethod
    def confirmed_from(cls, entry, minion, seen, now=None, pair=None):
        """The transition of ``pair`` a node's journal ``entry`` holds, confirmed by the node, ``seen`` (a :class:`Seen`)."""
        return cls(
            minion=minion,
            seq=entry.get("seq"),
            pair=pair,
            instance=entry.get("instance"),
            vrid=entry.get("vrid"),
            interface=entry.get("interface"),
            state=entry.get("state"),
            previous_state=entry.get("previous_state", UNKNOWN_STATE),
            vips=tuple(entry.get("vips") or ()),
            source=entry.get("source"),
            at=entry.get("received_at") or iso_utc(entry.get("time") or now or time.time()),
            recorded_at=iso_utc(now or time.time()),
            seen=Seen(seen).value,
            confirmed=True,
        )

    @classmethod
    def from_json(cls, data):
        """The transition a history line (or its brief) holds; missing keys stay missing in :meth:`to_json`."""
        fields = {field.name for field in dataclasses.fields(cls)} - {"keys", "extra"}
        known = {key: value for key, value in data.items() if key in fields}
        if isinstance(known.get("vips"), list):
            known["vips"] = tuple(known["vips"])
        extra = {key: value for key, value in data.items() if key not in fields and key != "kind"}
        return cls(**{"minion": None, "seq": None, **known}, keys=tuple(data), extra=extra)

    def to_json(self):
        """The history line's mapping: the keys read (or this version's), in their order."""
        values = {**dataclasses.asdict(self), **self.extra, "kind": RecordKind.TRANSITION.value}
        values["vips"] = list(self.vips) if isinstance(self.vips, tuple) else self.vips
        keys = [key for key in TRANSITION_KEYS if values[key] or key not in OPTIONAL_KEYS] if self.keys is None else self.keys
        return {key: values[key] for key in keys}

    def marked_planned(self):
        """This transition, part of a planned move."""
        keys = self.keys if self.keys is None or "planned" in self.keys else (*self.keys, "planned")
        return dataclasses.replace(self, planned=True, keys=keys)

    @property
    def key(self):
        """The reaction to it: :func:`reaction_key`."""
        return reaction_key(self.minion, self.seq)

    def brief(self):
        """:func:`brief` of this transition."""
        return brief(self.to_json())

    @property
    def becomes_master(self):
        return self.state == VrrpState.MASTER

    def back_from_fault(self):
        """Whether it brings its node back from FAULT, live and unplanned: a failback may be due."""
        return (self.previous_state, self.state) == (VrrpState.FAULT, VrrpState.BACKUP) and self.seen == Seen.LIVE and not self.planned


def brief(record):
    """The keys of a transition or claim (a JSON mapping) that a reaction's return, flap damping and the claims show."""
    return {key: record.get(key) for key in BRIEF_KEYS}


def as_json(record):
    """A record as the history holds it: a :class:`Transition`'s JSON, a mapping as it is."""
    return record.to_json() if isinstance(record, Transition) else record


def transitions(records):
    """The transitions among history ``records`` (JSON mappings), as :class:`Transition`, in order."""
    return [Transition.from_json(record) for record in records if record.get("kind") == RecordKind.TRANSITION]


# --- the other kinds of record: JSON mappings, as the history holds them --------------------------


def _record(kind, **fields):
    return {"kind": kind.value, **fields}


def claim(data, minion, now=None):
    """An event ``data`` its node did not confirm: a claim, which takes no (minion, seq) slot."""
    return _record(
        RecordKind.CLAIM,
        minion=minion,
        **{key: data.get(key) for key in ("seq", "instance", "state", "previous_state", "vips")},
        at=iso_utc(now or time.time()),
        message=f"{minion} did not confirm this event: not acted on until its journal answers",
    )


def claim_settled(minion, seq, outcome, message):
    return _record(RecordKind.CLAIM_SETTLED, minion=minion, seq=seq, outcome=outcome, message=message)


def warning(minion, code, message):
    return _record(RecordKind.WARNING, minion=minion, code=code, message=message)


def dns(instance, minion, ok, attempts, error):
    return _record(RecordKind.DNS, instance=instance, minion=minion, ok=ok, attempts=attempts, error=error)


def alarm(problem, instance, message, states):
    """A split brain or no MASTER that lasted (``problem``, a :class:`Problem`)."""
    return _record(RecordKind(problem), instance=instance, message=message, states=states)


def step_failed(instance, step, message):
    return _record(RecordKind.STEP_FAILED, instance=instance, step=step, message=message)


def planned(instance, minion, message):
    return _record(RecordKind.PLANNED, instance=instance, minion=minion, message=message)


def maintenance(minion, message):
    return _record(RecordKind.MAINTENANCE, minion=minion, message=message)


def server_state(kind, service, server, by, message, **outcome):
    """A backend server drained or set ready on the pair's nodes (``kind``: :attr:`RecordKind.DRAIN` or :attr:`RecordKind.READY`)."""
    return _record(RecordKind(kind), service=service, server=server, by=by, **outcome, message=message)


def certificate(at, row, message):
    """A certificate warning, ``row`` as :mod:`saltext.lbpair.master.cert_watch` finds it."""
    return {"at": at, **_record(RecordKind.CERTIFICATE, **row), "message": message}


# --- notifications --------------------------------------------------------------------------------


class Severity(enum.StrEnum):
    """How urgent a notification is; equal to its value as text."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclasses.dataclass(frozen=True)
class Notice:
    """
    A notification: its ``kind`` (``transition``, ``summary``, ``claim``, ``warning``, or an
    alarm's: ``split_brain``, ``no_master``, ``dns_failed``, ``step_failed``), its
    :class:`Severity`, the VRRP instance it is about, its subject, text and details.
    """

    kind: str
    severity: Severity
    instance: str
    subject: str
    text: str
    details: dict = dataclasses.field(default_factory=dict, hash=False)
    pair: str = None

    @classmethod
    def from_json(cls, data):
        return cls(**{**data, "severity": Severity(data["severity"])})

    def in_pair(self, pair):
        """This notice about ``pair`` (``None``: about no pair in particular), which its subject and text then name first."""
        if pair is None or self.pair is not None:
            return self
        return dataclasses.replace(self, pair=pair, subject=f"[{pair}] {self.subject}", text=f"[{pair}] {self.text}")

    def to_json(self):
        """The mapping the generic webhook posts and the reaction state keeps (``pair`` when it names one)."""
        values = {**dataclasses.asdict(self), "severity": self.severity.value}
        return values if self.pair else {key: value for key, value in values.items() if key != "pair"}

    @property
    def critical(self):
        return self.severity is Severity.CRITICAL


# --- work left for later --------------------------------------------------------------------------


class TaskKind(enum.StrEnum):
    """What a piece of work left to the background job does; equal to its value as text."""

    CHECK = "check"  # the pair check after the settle time
    DNS = "dns"  # a DNS update retried
    CATCH_UP = "catch_up"  # a catch-up from a node's journal retried


#: the fields each kind of task holds, in the order the reaction state keeps them
TASK_FIELDS = {
    TaskKind.CHECK: ("pair", "instance", "follow"),
    TaskKind.DNS: ("pair", "instance", "minion", "attempt"),
    TaskKind.CATCH_UP: ("minion", "attempt"),
}


@dataclasses.dataclass(frozen=True)
class Task:
    """A piece of work for the background job: its kind and the fields that kind holds (:data:`TASK_FIELDS`)."""

    kind: TaskKind
    instance: str = None
    minion: str = None
    attempt: int = None
    pair: str = None  # None in the work an older version left: its one pair
    # the node DNS may follow from a check, if it is the sole MASTER (None: none; True: any, as an older version's checks did)
    follow: object = True

    @classmethod
    def check(cls, pair, instance, follow=True):
        return cls(TaskKind.CHECK, instance=instance, pair=pair, follow=follow)

    @classmethod
    def dns(cls, pair, instance, minion, attempt):
        return cls(TaskKind.DNS, instance=instance, minion=minion, attempt=attempt, pair=pair)

    @classmethod
    def catch_up(cls, minion, attempt):
        return cls(TaskKind.CATCH_UP, minion=minion, attempt=attempt)

    @classmethod
    def from_json(cls, data):
        """The task the reaction state holds; ``ValueError`` if its kind is not one this version knows."""
        kind = TaskKind(data.get("kind"))
        return cls(kind, **{name: data[name] for name in TASK_FIELDS[kind] if name in data})

    def to_json(self):
        return {"kind": self.kind.value, **{name: getattr(self, name) for name in TASK_FIELDS[self.kind]}}

    @property
    def key(self):
        """
        What it is due for: newer work of the same key replaces older (``check:web/lbpair_51``,
        ``catch_up:lb2``). A check DNS does not follow has a key of its own (``check:web/lbpair_51
        no DNS``): it must not replace one that DNS follows.
        """
        subject = self.minion if self.kind is TaskKind.CATCH_UP else scoped(self.pair, self.instance)
        return f"{self.kind}:{subject}{'' if self.follow else ' no DNS'}"
