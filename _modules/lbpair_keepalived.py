"""
keepalived on an lbpair node: its VRRP configuration rendered from the ``lbpair``
pillar, checked with ``keepalived -t``, reloaded (SIGHUP through the service
manager, never a restart); the VRRP state and the node's transition journal.

Minion configuration (all optional):

.. code-block:: yaml

    lbpair_keepalived:
      config_file: /etc/keepalived/keepalived.conf
      service: keepalived
      binary: keepalived
      pid_file: /run/keepalived.pid
      json_file: /tmp/keepalived.json   # keepalived writes it to $TMPDIR/keepalived.json
      bus: system                       # or a D-Bus address, e.g. unix:path=/run/lb1/bus.sock
    lbpair_journal:
      path: /var/cache/salt/minion/lbpair/transitions.jsonl
      max_entries: 10000

The state ``lbpair_keepalived.configured`` installs the configuration; the
``lbpair_vrrp`` beacon writes the journal.
"""

from saltext.lbpair.model import pillar, schema
from saltext.lbpair.node import deploy, handover, journal, journal_claims, keepalived_config, keepalived_process, track

__virtualname__ = "lbpair_keepalived"


def __virtual__():
    return __virtualname__


def _options():
    return __salt__["config.get"]("lbpair_keepalived", {})


def _model(node=None, lbpair=None):
    return pillar.minion_model(__pillar__, __opts__, __context__, node, lbpair)


def _fresh_model():
    """
    The model from the pillar compiled now: a state run compiles it for itself only, and the
    minion's in-memory pillar may predate the last highstate (a service just added).
    """
    return pillar.minion_model(__salt__["pillar.items"](unmask=True), __opts__, {})  # Salt 3008 masks values by default


def render(node=None, pillar=None):
    """
    Render keepalived.conf for a node from the lbpair pillar; passwords are masked.

    node
        Minion id of the node; defaults to this minion.

    pillar
        An ``lbpair`` pillar mapping to render instead of this minion's pillar.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.render
        salt lb1 lbpair_keepalived.render node=lb2
    """
    return deploy.redact(keepalived_config.render_config(_model(node, pillar)))


def validate():
    """
    Render the configuration from the pillar into a scratch file and check it with
    the real ``keepalived -t``; returns keepalived's messages, or raises them, each
    message about a line led by the pillar key behind it
    (``lbpair:vrrp:interface (line 21: "interface eth9"): ...``). Run it on the
    node itself: keepalived checks that the VRRP interface exists.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.validate
    """
    return deploy.check_model(keepalived_process.daemon(_options()), _model())


def reload():
    """
    Reload keepalived (SIGHUP through the service manager); start it if it is not
    running. Never restarts it: a restart makes the MASTER give up its virtual IPs.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.reload
    """
    return deploy.reload(keepalived_process.daemon(_options()), __salt__)


def status():
    """
    The VRRP state of every instance on this node: ``{name: {"state": "MASTER", ...}}``.

    Read over D-Bus (instance ``Name`` and ``State``) from the bus in the minion
    option ``lbpair_keepalived:bus`` (default: the system bus); when keepalived is
    not on that bus, or dbus-next is missing, from keepalived's JSON dump. The
    ``source`` key says which (``dbus`` or ``json``).

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_keepalived.status
    """
    return keepalived_process.Local(_options()).status()


def preferred(failback=False):
    """
    The VRRP instances this node prefers, by keepalived name (``lbpair_52``,
    ``lbpair_52_6``): it has the higher priority in them, and ``lbpair.rebalance``
    sends their VIPs back to it. With ``failback=True``, only those whose VIPs it
    waits ``lbpair:vrrp:failback_delay`` for when it is back from FAULT, so that the
    master hands them back gracefully: none with ``preempt: false``, a failback delay
    of 0, or while the node defers (after a switchover or maintenance); and only once
    keepalived has the node at its full priority in them again (its check rises
    after HAProxy is back: it waits up to the check's ``(rise + 1) x interval`` s,
    at most half the failback delay).

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_keepalived.preferred
        salt lb1 lbpair_keepalived.preferred failback=True
    """
    model = _fresh_model()
    if not schema.boolean(failback, "failback"):
        return keepalived_config.preferred_instances(model)
    awaited = keepalived_config.failbacks_awaited(model, deferring=bool(track.read(track.DEFER)))
    if not awaited:
        return []
    # its priority changing while it takes over after the holder's priority-0 advert, keepalived
    # waits its whole master-down timer (3 adverts) instead: the held connections would time out
    below = keepalived_process.Local(_options()).wait_for_full_priority(model, awaited, keepalived_config.full_priority_wait(model))
    return [name for name in awaited if name not in below]


def transitions(since=0, since_of=None, claim=False):
    """
    The VRRP transitions this node's ``lbpair_vrrp`` beacon journalled after
    sequence number ``since``, oldest first: what the master may have missed
    while it could not hear this minion.

    since_of
        ``{minion id: seq}``: one job to many nodes, each reading after its own
        sequence number (``since`` for a node it does not name).

    claim
        With ``True``, the job's master claims each transition returned unless
        another master claimed it first, and each entry gets ``acting``: whether
        this master owns it (notifies, updates DNS). The first claim of a
        sequence number holds for good; the same master claiming again gets
        ``True`` again. Two hot masters so act once per transition.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.transitions
        salt lb1 lbpair_keepalived.transitions since=41
        salt -L lb1,lb2 lbpair_keepalived.transitions since_of='{lb1: 41, lb2: 7}'
        salt lb1 lbpair_keepalived.transitions since=41 claim=True
    """
    since = journal.since_for(__opts__["id"], since, since_of)
    node_journal = journal.Journal.from_options(__salt__["config.get"]("lbpair_journal", {}), __opts__["cachedir"])
    if not schema.boolean(claim, "claim"):
        return node_journal.since(since)
    return journal_claims.Claims(node_journal).since(since, __opts__["master"])


def _set_track(name, on):
    on = schema.boolean(on, "on")
    track.write(name, int(on))
    return {"track_file": track.path(name), "on": on}


def defer(on=True):
    """
    Make this node defer to its peer (its priority drops below the peer's, track
    file ``defer``) or stop deferring. It survives highstate and reboots; used by
    ``lbpair.switchover`` so that the node a planned switchover left does not take
    the VIPs back.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.defer
        salt lb1 lbpair_keepalived.defer on=False
    """
    return _set_track(track.DEFER, on)


def maintenance(on=True):
    """
    Keep this node out of the pair (FAULT, track file ``maintenance``) until released
    with ``on=False``; it survives highstate and reboots. This moves the VIPs at
    once, with failed requests: ``salt-run lbpair.maintenance <node>`` hands them
    over first.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.maintenance
        salt lb1 lbpair_keepalived.maintenance on=False
    """
    return _set_track(track.MAINTENANCE, on)


def hand_over(defer=True):
    """
    Hand the VIPs this node holds to its peer with no failed request: new
    connections to the VIPs are held for a moment, the node defers and goes to
    FAULT until its peer has taken over. Returns the steps with their times. Used
    by ``salt-run lbpair.switchover``, which also checks the peer first, and by the
    master's graceful failback with ``defer=False`` (the peer is the preferred node).

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_keepalived.hand_over
    """
    defer = schema.boolean(defer, "defer")
    return handover.hand_over(_fresh_model(), keepalived_process.Local(_options()), track.write, defer=defer)
