"""
Failover reactions of the lbpair master: one central failover history,
catch-up from the nodes' journals, pair status, notifications and DNS.

The reactor (``salt/master.d/lbpair.conf``) calls :func:`on_beacon` for the
``lbpair_vrrp`` beacon's events and :func:`on_minion_start` when a minion
(re)connects. An event is a trigger, never the truth: each transition is
checked against the node's own journal and the pair's state is read from the
nodes, both through job returns, which Salt ties to the minion's key (see
:mod:`saltext.lbpair.master.reactions`).

Master configuration: the ``lbpair_reactions`` block (see
:mod:`saltext.lbpair.master.reactions_config` and ``salt/master.d/lbpair.conf``). Its
secrets stay there and never reach events, job returns, the history or logs.
Needs ``dnspython`` (``pip install 'saltext-lbpair[master]'``).
"""

import logging
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from saltext.lbpair.core import times
    from saltext.lbpair.master import fleet, reactions, reactions_config
    from saltext.lbpair.master import history as history_file
    from saltext.lbpair.master import report as report_page
    from saltext.lbpair.master.salt_side import SaltSide

    MISSING = None
except ImportError as exc:  # dnspython (the master extra) or saltext.lbpair itself
    MISSING = str(exc)

__virtualname__ = "lbpair"

log = logging.getLogger(__name__)


def __virtual__():
    if MISSING:
        return False, f"lbpair: {MISSING} (pip install 'saltext-lbpair[master]', or salt-run saltutil.sync_all)"
    return __virtualname__


def _config():
    return reactions_config.normalise(__opts__.get(reactions_config.CONFIG_KEY) or {})


def _salt():
    """The master's Salt (jobs, minions, compiled pillars, event bus): :class:`saltext.lbpair.master.salt_side.SaltSide`."""
    return SaltSide(__opts__)


def _reactions(claims=None):
    side = _salt()
    claims = claims or side.claims()
    return reactions.Reactions(_config(), side.ask, side.wake, claim_of=claims, minions=side.known_minions, report=side.report)


def on_beacon(tag, data, wait=False, **kwargs):
    """
    React to an ``lbpair_vrrp`` beacon event (the ``lbpair`` engine calls it for
    each one it reads off the bus; or the reactor, ``salt://reactor/lbpair/vrrp.sls``).

    The call only queues the event (it waits for nothing); the background worker
    (the ``lbpair`` engine, else a background ``lbpair.flush`` this call starts)
    reacts to all queued events at once. ``wait=True`` reacts here and returns
    the outcome (an operator replaying an event).

    Ignores events whose minion is not a node of a pair, and transitions that
    the node's own journal does not hold (forged). A transition the journal holds
    is recorded in the history and reacted to: notified (damped), and the pair
    checked (DNS follows the sole MASTER, split brain and no MASTER raise critical
    alarms). An event whose node does not answer is a claim: recorded as such and
    not acted on until the node's journal settles it. Each step of a reaction runs
    on its own; calling this again with the same event completes the steps that
    failed, once. Warnings are confirmed with the node's own status.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.on_beacon salt/beacon/lb2/lbpair_vrrp/lbpair_51/MASTER \\
            '{"seq": 7, "instance": "lbpair_51", "state": "MASTER"}' wait=True
    """
    if wait:
        return _reactions().on_beacon(tag, data)
    outcome = _reactions().queue(tag, data)
    if "queued" not in outcome:  # refused, or reacted to here (a full disk): told as the worker tells what it did
        _salt().report([{"event": tag, "outcome": outcome}])
    return outcome


def on_minion_start(tag, data, **kwargs):
    """
    React to ``salt/minion/<id>/start``: leave a catch-up with a node of a pair to
    the background worker (``lbpair.catch_up`` does it at once).

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.on_minion_start salt/minion/lb1/start '{"id": "lb1"}'
    """
    parts = str(tag or "").split("/")
    minion = parts[2] if len(parts) >= 4 else None
    claims = _salt().claims()
    if minion:
        claims.forget(minion)  # its pillar may have changed while it was away
    return _reactions(claims).later_catch_up(minion)


def on_pillar_refresh(tag, **kwargs):
    """
    React to ``minion/refresh/<id>`` (the master compiled ``<id>``'s pillar; the
    master fires it with ``minion_data_cache_events: true``): forget what lbpair
    learnt of its pair, so that the next reaction compiles its pillar afresh
    (else it is kept a minute).

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.on_pillar_refresh minion/refresh/lb1
    """
    parts = str(tag or "").split("/")
    if len(parts) == 3 and parts[:2] == ["minion", "refresh"]:
        _salt().claims().forget(parts[2])
        return {"forgot": parts[2]}
    return {"ignored": f"unexpected tag {tag!r}"}


def catch_up(minion):
    """
    Pull the transitions ``minion`` journalled after the last one in the history
    and record them, marked late; notify them and check the pair.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.catch_up lb1
    """
    return _reactions().catch_up(minion)


def flush(wait=False, resident=False):
    """
    Do the reactions' work that is due: the queued beacon events, flap-damping
    summaries whose window has ended, pair checks after the settle time, DNS and
    catch-up retries. ``wait=True``: keep working until nothing is left (the
    background job the reactions start when the ``lbpair`` engine does not run);
    ``resident=True``: keep working for good, waiting for work (what the
    ``lbpair`` engine runs). The master's schedule runs it every minute as well,
    to cover a master restarted in between. Each round's work is fired as the
    event ``lbpair/worker/done``.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.flush
    """
    if wait or resident:
        return _reactions().work_in_background(resident)
    return _reactions().flush()


def certificates(pair=None):
    """
    Ask the nodes of every pair (or of ``pair``) for their TLS certificates and warn about those that expire
    within ``lbpair_reactions:certificates:warn_days`` (30 by default) or could
    not be read, and about stale OCSP responses (nextUpdate passed, or none while
    the certificate names a responder: ``ocsp_stale``): recorded in the history
    and sent through the webhook and mail, at most once a day per certificate,
    node and kind of warning. The master's schedule runs it
    daily (``salt/master.d/lbpair.conf``).

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.certificates
        salt-run lbpair.certificates pair=web
    """
    return _reactions().check_certificates(pair)


def status(pair=None):
    """
    Ask the nodes of every pair (or of ``pair``) and show, per pair and VRRP
    instance, who is MASTER and BACKUP and the VIPs; the pairs with a problem
    come first, and ``problems`` lists them all, each naming its pair. Split
    brain, no MASTER, a node that did not answer, or a pair or minion the fleet
    leaves out (pillars that disagree, an outsider) make the result non-zero.
    Also shows the open claims (events their node has not confirmed), reactions
    with steps still to complete, the work due later, and how many damaged lines
    the history skips.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.status
        salt-run lbpair.status pair=web
    """
    view = _reactions().status(pair)
    if view.get("retcode"):
        __context__["retcode"] = 1
    return view


def history(instance=None, minion=None, since=None, until=None, pair=None):
    """
    The failover history as a timeline, optionally filtered by pair, instance,
    minion and time (``since``/``until``: ISO 8601 or epoch seconds). Each line
    names the pair and instance (``web/lbpair_51``). With ``--out=json`` (or any
    structured outputter) the records themselves.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.history
        salt-run lbpair.history instance=lbpair_51 minion=lb2 since=2026-11-26T13:00:00Z
        salt-run lbpair.history pair=web
        salt-run lbpair.history --out=json
    """
    config = _config()
    stored = history_file.History(config["history"]["path"])
    records = stored.read()
    try:
        chosen = history_file.select(records, instance=instance, minion=minion, since=since, until=until, pair=pair)
    except ValueError as exc:
        raise SaltInvocationError(f"since/until: ISO 8601 (2026-11-26T13:00:00Z) or epoch seconds: {exc}") from None
    if __opts__.get("output") in (None, "", "nested", "txt", "raw"):
        lines = history_file.timeline(chosen) or ["(no transitions recorded)"]
        damaged = stored.bad_lines()
        return "\n".join(lines + ([f"({damaged} damaged lines skipped)"] if damaged else []))
    return chosen


def report(pair=None, since=None, name=None):
    """
    Write the failover history as one HTML page (no script, nothing fetched: open it
    anywhere): per pair and VRRP instance, a timeline of the state each node held, the
    failovers marked planned or unplanned, the claims, the time without a MASTER, how long
    the master took to record each transition and to point DNS at the new MASTER, and a
    table of the transitions. Optionally of one ``pair`` only, and from ``since`` on (ISO
    8601 or epoch seconds). The page goes to the master's report folder
    (``lbpair_reactions:report_dir``, by default ``<cachedir>/lbpair/reports``), readable by
    the master's user only, as ``name``: a file name only (letters, digits, ``.``, ``_``,
    ``+``, ``-``, ending ``.html``), by default ``lbpair-report.html`` (``lbpair-report-<pair>.html``
    with ``pair``). Returns where it is, how many pairs and transitions it shows.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.report
        salt-run lbpair.report pair=web since=2026-11-26T00:00:00Z
        salt-run lbpair.report name=web-november.html
    """
    config = _config()
    try:
        start = times.parse(since)
    except (ValueError, OverflowError, OSError) as exc:
        raise SaltInvocationError(f"since: ISO 8601 (2026-11-26T13:00:00Z) or epoch seconds: {exc}") from None
    try:
        records = history_file.History(config["history"]["path"]).read()
    except OSError as exc:
        raise CommandExecutionError(f"the history {config['history']['path']} cannot be read: {exc.strerror or exc}") from None
    directory = reactions_config.report_dir(config, __opts__["cachedir"])
    pair = None if pair is None else str(pair)  # pair=5 on the command line arrives as a number
    return report_page.write(directory, name, records, time.time(), pair=pair, since=start and start.timestamp())


def check_config():
    """
    Validate the ``lbpair_reactions`` block; returns it normalised, secrets masked,
    with the fleet: each pair the nodes' pillars describe (compiled afresh), its
    nodes and VRRP instances, and the pairs and minions left out, with why (their
    pillars disagree, an outsider claims a pair). A DNS record that names an
    ``instance`` must name one its pair's keepalived has; a DNS record must be able
    to point at each node of its pair. With ``lbpair_reactions:nodes`` (one pair),
    the instances come from the ``lbpair`` pillar of each of those nodes.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.check_config
    """
    config = _config()
    if config["nodes"]:
        if reactions_config.records_with_instance(config):
            pillars = {minion: _salt().lbpair_pillar(minion) for minion in config["nodes"]}
            reactions_config.check_record_instances(config, reactions_config.pair_instances(pillars))
        return reactions_config.masked(config)
    claims = _salt().claims()
    claims.forget_all()
    pairs, left_out = fleet.Directory(None, claims, _salt().known_minions).fleet()
    for pair in pairs.values():
        reactions_config.check_pair(config, pair)
    shown = {name: {"nodes": sorted(pair.nodes), "instances": sorted(pair.instances)} for name, pair in pairs.items()}
    unused = sorted(set(config["pairs"]) - set(pairs))
    return {**reactions_config.masked(config), "fleet": {"pairs": shown, "left_out": left_out, "settings_of_no_pair": unused}}


def dns_update(minion):
    """
    Point the DNS records of ``minion``'s pair at ``minion`` now (retried, then reported).

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.dns_update lb2
    """
    return _reactions().dns_update(minion)


def switchover(to, timeout=30):
    """
    Move the pair's VIPs to the node ``to``, on purpose (an upgrade, a reboot),
    with no failed request: the other nodes defer (their priority is lowered
    below ``to``'s), so ``to`` takes the VIPs over while the old MASTER still
    serves. Waits (at most ``timeout`` seconds) until ``to`` is the sole MASTER
    and the history holds its confirmed transition; returns the timeline. Refused
    unless every node answers and the pair is healthy. The deferral stays (across
    highstate and reboots) until the next switchover names the node again.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.switchover lb2
        salt-run lbpair.switchover to=lb1 timeout=60
    """
    return _reactions().switchover(to, timeout)


def rebalance(timeout=30, pair=None):
    """
    Send each VRRP instance's VIPs back to the node that prefers it (active/active
    again after a switchover or maintenance moved them all to one node): no node
    defers any more, and keepalived's preemption moves each instance whose MASTER
    is not its preferred node (at once, not the switchover's hand-over: a
    connection under way to a moving VIP may be cut). The nodes say which
    instances they prefer (``lbpair_keepalived.preferred``). Waits (at most
    ``timeout`` seconds) until each instance is there; returns the timeline.
    Refused unless every node answers and the pair is healthy. With more than
    one pair, ``pair`` names it.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.rebalance
        salt-run lbpair.rebalance timeout=60
        salt-run lbpair.rebalance pair=web
    """
    return _reactions().planned_moves(pair).rebalance(timeout)


def maintenance(node, release=False, timeout=30):
    """
    Take ``node`` out of the pair until released: its VIPs go to its peer first
    (a switchover, no failed request), then it stays in FAULT, across highstate
    and reboots. ``release=True`` lets it serve again; the VIPs stay where they
    are (``lbpair.switchover`` moves them back). Refused when the peer is not healthy.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.maintenance lb1
        salt-run lbpair.maintenance lb1 release=True
    """
    return _reactions().maintenance(node, release, timeout)


def drain(service, server, wait=True, timeout=60, pair=None):
    """
    Drain the backend server ``server`` of ``service`` on both nodes of the pair,
    the node holding the service's VIPs first: HAProxy sends it no new connection
    (except those a persistence cookie sends), those under way go on. With
    ``wait`` (the default), ask the nodes for its sessions every half second until
    none is left on either or ``timeout`` seconds pass. Returns per node the state
    set, HAProxy's status and the sessions left; ``drained``, ``sessions_left``
    and ``waited`` (s); ``retcode`` 1 (salt-run's exit code) when a wait ended
    with sessions left. A routed service's backend is named as HAProxy names it
    (``shop.api``). Refused for a service or server the pair's pillar does not
    define, or unless both nodes answer. Recorded in the history (``drain``).
    With more than one pair, ``pair`` names it. ``lbpair.ready`` puts the server back.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.drain foo foo1
        salt-run lbpair.drain foo foo1 timeout=300
        salt-run lbpair.drain foo foo1 wait=False pair=web
    """
    result = _reactions().drains(_salt().lbpair_pillar, pair).drain(service, server, wait, timeout, by=globals().get("__user__"))
    retcode = int(bool(wait) and not result["drained"])  # salt-run exits with a returned retcode (as lbpair.status's)
    if retcode:
        __context__["retcode"] = retcode
    return {**result, "retcode": retcode}


def ready(service, server, pair=None):
    """
    Set the backend server ``server`` of ``service`` back to ready on both nodes
    of the pair (after ``lbpair.drain``), the node holding the service's VIPs
    first. Refused for a service or server the pair's pillar does not define, or
    unless both nodes answer. Recorded in the history (``ready``). With more than
    one pair, ``pair`` names it.

    CLI Example:

    .. code-block:: bash

        salt-run lbpair.ready foo foo1
        salt-run lbpair.ready foo foo1 pair=web
    """
    return _reactions().drains(_salt().lbpair_pillar, pair).ready(service, server, by=globals().get("__user__"))
