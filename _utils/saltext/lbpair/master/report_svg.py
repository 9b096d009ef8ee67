"""
The timeline of one VRRP instance as inline SVG, for the failover report
(:mod:`saltext.lbpair.master.report`): one band per node coloured by the state it held, the time
without a MASTER (``.no-master``) and with several (``.split-brain``) across the bands, each
failover marked (``.failover.planned``, ``.failover.unplanned``), each claim (``.claim``), and
below the bands how long the master took to record each transition (``.latency``). Long quiet
stretches are drawn narrow (``.quiet``, :mod:`saltext.lbpair.master.report_scale`).

Every text and attribute value passes through :func:`esc`; class names come from fixed sets only,
never from the history. Coordinates are rounded to 0.1: the same picture draws the same bytes.
"""

import datetime
import html

from saltext.lbpair.core.errors import printable
from saltext.lbpair.master.report_scale import Scale
from saltext.lbpair.model.keepalived_model import VrrpState

WIDTH = 1000
LEFT = 170  # the nodes' names are left of it
RIGHT = 985
TOP = 28  # the time axis is above it
BAND = 22
GAP = 8
LATENCY_LANE = 30
LABEL_CHARS = 22
TICK_SPACING = 160  # px between the ticks of a stretch drawn to scale
LABEL_SPACING = 140  # px: a tick closer than this to the one before is left out
#: the classes a node's state gives its spans; any other state draws as ``state-other``
STATE_CLASSES = {state.value: f"state-{state.value.lower()}" for state in VrrpState}


def esc(value):
    """``value`` for HTML or SVG text and quoted attributes: line breaks and control characters shown escaped, markup escaped."""
    return html.escape(printable(str(value)), quote=True)


def when(epoch, seconds=False):
    """Epoch seconds as UTC text: ``2026-11-26 13:02:11`` (``seconds``: with milliseconds)."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (f".{moment.microsecond // 1000:03d}" if seconds else "")


def duration(seconds):
    """A duration for people: ``0.84 s``, ``12 min 5 s``, ``3 h 2 min``."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def counted(number, what):
    """``1 span``, ``2 spans``."""
    return f"{number} {what}{'' if number == 1 else 's'}"


def short(value):
    """A node's name cut to fit left of the bands (the whole name is in its title)."""
    name = printable(str(value))
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "\u2026"


def timeline(instance, start, end):
    """The SVG of ``instance`` (a :class:`~saltext.lbpair.master.report_model.Instance`) from ``start`` to ``end``."""
    scale = Scale(start, end, LEFT, RIGHT, _moments(instance))
    bands_bottom = TOP + len(instance.nodes) * (BAND + GAP)
    height = bands_bottom + LATENCY_LANE + 6
    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%"'
        f' role="img" aria-label="timeline of {esc(instance.name)}">',
        *_axis(scale, bands_bottom),
        *(_band(node, index, instance, scale) for index, node in enumerate(instance.nodes)),
        *_overlays(instance, scale, bands_bottom),
        *_quiet(scale, bands_bottom),
        *(_failover(row, instance.nodes, scale) for row in instance.failovers),
        *(_claim(row, instance.nodes, scale) for row in instance.claims),
        *_latencies(instance, scale, bands_bottom),
        "</svg>",
    ]
    return "\n".join(parts)


def _moments(instance):
    """When something changed in ``instance``: the ends of its spans and the times of its records."""
    spans = [*instance.no_master, *instance.split, *(span for node in instance.nodes for span in instance.spans[node])]
    return [*(point for span in spans for point in (span.start, span.end)), *(row.at for row in (*instance.rows, *instance.events))]


def _axis(scale, bottom):
    """Ticks with the time in UTC (the date where it changes); the quiet stretches have none."""
    parts, day = ['<g class="axis">'], None
    for epoch, x in _ticks(scale):
        anchor = "start" if x == LEFT else "end" if x == RIGHT else "middle"
        label = when(epoch) if when(epoch)[:10] != day else when(epoch)[11:]
        day = when(epoch)[:10]
        parts.append(f'<line x1="{x}" y1="{TOP - 6}" x2="{x}" y2="{bottom}"/>')
        parts.append(f'<text x="{x}" y="{TOP - 10}" text-anchor="{anchor}">{esc(label)}</text>')
    parts.append("</g>")
    return parts


def _ticks(scale):
    """
    ``(epoch, x)`` of the ticks: spread over each stretch drawn to scale and at its end, then the axis' end;
    none closer than :data:`LABEL_SPACING` to the one before.
    """
    wanted = []
    for stretch in scale.stretches:
        if not stretch.quiet:
            count = max(1, int((stretch.right - stretch.left) // TICK_SPACING))
            wanted += [stretch.start + (stretch.end - stretch.start) * step / count for step in range(count + 1)]
    ticks = []
    for epoch in [*wanted, scale.end]:
        x = scale.x(epoch)
        if ticks and x - ticks[-1][1] < LABEL_SPACING:
            continue
        ticks.append((epoch, x))
    return ticks


def _quiet(scale, bottom):
    """The quiet stretches, veiled across the bands: a break in the axis."""
    parts = []
    for stretch in scale.stretches:
        if stretch.quiet:
            left, width = round(stretch.left, 1), round(stretch.right - stretch.left, 1)
            quiet = duration(stretch.end - stretch.start)
            title = f"drawn narrow: nothing changed for {quiet}, {when(stretch.start)} to {when(stretch.end)} UTC"
            parts.append(
                f'<rect class="quiet" x="{left}" y="{TOP - 6}" width="{width}" height="{bottom - TOP + 6}">'
                f"<title>{esc(title)}</title></rect>"
            )
    return parts


def _overlays(instance, scale, bottom):
    """The time without a MASTER and with several, across every band."""
    parts = []
    for spans, css, what in ((instance.no_master, "no-master", "no MASTER"), (instance.split, "split-brain", "several MASTERs")):
        for span in spans:
            x1, x2 = scale.x(span.start), scale.x(span.end)
            title = f"{what} for {duration(span.end - span.start)}: {when(span.start)} to {when(span.end)} UTC"
            parts.append(
                f'<rect class="{css}" data-start="{span.start:.3f}" data-end="{span.end:.3f}" x="{x1}" y="{TOP - 4}"'
                f' width="{max(round(x2 - x1, 1), 1.0)}" height="{bottom - TOP + 4}"><title>{esc(title)}</title></rect>'
            )
    return parts


def _row_y(index):
    return TOP + index * (BAND + GAP)


def _band(node, index, instance, scale):
    y = _row_y(index)
    parts = [
        f'<g class="band" data-node="{esc(node)}">',
        f'<text class="node" x="{LEFT - 8}" y="{y + BAND - 6}" text-anchor="end"><title>{esc(node)}</title>{esc(short(node))}</text>',
        f'<rect class="lane" x="{LEFT}" y="{y}" width="{RIGHT - LEFT}" height="{BAND}"/>',
    ]
    for span in instance.spans[node]:
        x1, x2 = scale.x(span.start), scale.x(span.end)
        css = STATE_CLASSES.get(span.state, "state-other")
        title = f"{node}: {span.state or '?'} for {duration(span.end - span.start)}, from {when(span.start)} UTC"
        parts.append(
            f'<rect class="span {css}" data-state="{esc(span.state)}" x="{x1}" y="{y}" width="{max(round(x2 - x1, 1), 0.5)}"'
            f' height="{BAND}"><title>{esc(title)}</title></rect>'
        )
    parts.append("</g>")
    return "\n".join(parts)


def _failover(row, nodes, scale):
    kind = "planned" if row.planned else "unplanned"
    x, y = scale.x(row.at), _row_y(nodes.index(row.text("minion")))
    said = [f"{row.text('minion')} {row.text('previous_state') or '?'} -> {row.text('state')}, {kind}, {when(row.at, True)} UTC"]
    said += [f"{name} after {duration(seconds)}" for name, seconds in sorted(row.latencies.items())]
    mark = (
        f'<path d="M{x} {y - 5} l5 5 l-5 5 l-5 -5 z"/>'
        if row.planned
        else f'<path d="M{x - 5} {y - 5} l10 0 l-5 8 z"/>'  # an arrow down onto its band
    )
    return (
        f'<g class="failover {kind}" data-node="{esc(row.text("minion"))}" data-at="{row.at:.6f}"><title>{esc("; ".join(said))}</title>'
        f'<line x1="{x}" y1="{TOP - 4}" x2="{x}" y2="{_row_y(len(nodes))}"/>{mark}</g>'
    )


def _claim(row, nodes, scale):
    x, y = scale.x(row.at), _row_y(nodes.index(row.text("minion"))) + BAND // 2
    said = f"{row.text('previous_state') or '?'} -> {row.text('state') or '?'}"
    title = f"claim: {row.text('minion')} said {said} at {when(row.at, True)} UTC, unconfirmed"
    return f'<circle class="claim" data-node="{esc(row.text("minion"))}" cx="{x}" cy="{y}" r="5"><title>{esc(title)}</title></circle>'


def _latencies(instance, scale, top):
    """Below the bands, a bar per transition as high as the time the master took to record it (the highest: the lane's height)."""
    highest = max(instance.latencies("recorded"), default=0)
    label = f"recorded after, max {duration(highest)}" if highest else "recorded after"
    parts = [f'<g class="latencies"><text x="{LEFT - 8}" y="{top + LATENCY_LANE - 8}" text-anchor="end">{esc(label)}</text>']
    for row in instance.rows:
        if "recorded" not in row.latencies:
            continue
        seconds = row.latencies["recorded"]
        bar = round(max(LATENCY_LANE * seconds / highest, 1.0), 1) if highest else 1.0
        title = f"{row.text('minion')} -> {row.text('state')} at {when(row.at, True)} UTC recorded after {duration(seconds)}"
        x, y = round(scale.x(row.at) - 1.5, 1), round(top + LATENCY_LANE - bar, 1)
        parts.append(
            f'<rect class="latency" data-seconds="{seconds:.3f}" x="{x}" y="{y}" width="3" height="{bar}">'
            f"<title>{esc(title)}</title></rect>"
        )
    parts.append("</g>")
    return parts
