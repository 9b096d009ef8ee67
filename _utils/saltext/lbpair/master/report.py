"""
The failover report: one self-contained HTML page (inline CSS and SVG, no script, nothing
fetched) drawn from the master's history, written by ``salt-run lbpair.report``.

Per pair (``section.pair[data-pair]``) and VRRP instance (``section.instance[data-instance]``): a
summary, the timeline (:mod:`saltext.lbpair.master.report_svg`: ``.band[data-node]``,
``.failover.planned``, ``.failover.unplanned``, ``.claim``, ``.no-master``, ``.latency``) and
``table.transitions``; per pair, ``table.events`` for the master's other records (claims, alarms,
DNS, failed steps, maintenance...). What the page shows is read by
:mod:`saltext.lbpair.master.report_model`.

The page goes to a folder of the master's (``lbpair_reactions:report_dir``) under a file
*name* (:func:`file_name`): never a path, so a grant of ``lbpair.report`` writes nowhere else. It
is written to a new file in that folder and renamed over the old one, so a symlink planted at
the name is replaced, never followed. The same history, ``since`` and ``now`` write the same bytes.
"""

import os
import re

from saltext.lbpair.core import store
from saltext.lbpair.core.errors import InvalidValue, LbpairError
from saltext.lbpair.master import report_model
from saltext.lbpair.master.records import RecordKind
from saltext.lbpair.master.report_svg import counted, duration, esc, timeline, when

DEFAULT_NAME = "lbpair-report.html"
#: a report's file name: a safe first character, a short safe charset, ``.html`` (``..`` refused apart)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,94}\.html")
#: the newest rows a table shows (an older one: ``since=``)
MAX_ROWS = 1000
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#212121;background:#fff}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:2px solid #455a64}h3{font-size:1.1em}
section.instance{margin:0 0 2em 1em}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}dl.summary dt{font-weight:600}dl.summary dd{margin:0}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}th,td{border:1px solid #cfd8dc;padding:.15em .5em;text-align:left;
vertical-align:top}th{background:#eceff1}td{max-width:40em;overflow-wrap:anywhere}
tr.failover-unplanned td.change{color:#b71c1c;font-weight:600}tr.failover-planned td.change{color:#0d47a1;font-weight:600}
tr.unconfirmed{font-style:italic}
.legend span{display:inline-block;margin-right:1em}.swatch{display:inline-block;width:1em;height:1em;vertical-align:middle;
margin-right:.3em;border:1px solid #90a4ae}
svg.timeline{max-width:1200px;font-size:11px;display:block}svg .axis line{stroke:#cfd8dc}svg .axis text{fill:#546e7a}
svg .lane{fill:#f5f5f5}svg text.node{fill:#212121;font-weight:600}
.state-master{fill:#2e7d32;background:#2e7d32}.state-backup{fill:#90caf9;background:#90caf9}
.state-fault{fill:#ef6c00;background:#ef6c00}.state-init{fill:#cfd8dc;background:#cfd8dc}
.state-stop,.state-deleted{fill:#616161;background:#616161}.state-other{fill:#ce93d8;background:#ce93d8}
svg .no-master,.swatch.no-master{fill:rgba(211,47,47,.35);background:rgba(211,47,47,.35);stroke:#d32f2f;stroke-dasharray:4 2}
svg .split-brain,.swatch.split-brain{fill:rgba(255,193,7,.4);background:rgba(255,193,7,.4);stroke:#ff8f00}
svg .failover line{stroke-width:1.5}svg .failover.unplanned line{stroke:#d32f2f}svg .failover.unplanned path{fill:#d32f2f}
svg .failover.planned line{stroke:#1565c0;stroke-dasharray:3 2}svg .failover.planned path{fill:#1565c0}
.swatch.unplanned{background:#d32f2f}.swatch.planned{background:#1565c0}
svg .claim{fill:#fff;stroke:#6a1b9a;stroke-width:2}.swatch.claim{border:2px solid #6a1b9a;border-radius:50%}
svg .quiet{fill:rgba(255,255,255,.7);stroke:#90a4ae;stroke-dasharray:2 2}.swatch.quiet{background:#fff;border-style:dashed}
svg .latency{fill:#546e7a}.swatch.latency{background:#546e7a}svg .latencies text{fill:#546e7a}
"""
LEGEND = (
    ("state-master", "MASTER"), ("state-backup", "BACKUP"), ("state-fault", "FAULT"), ("state-init", "INIT"),
    ("state-stop", "STOP"), ("state-other", "other state"), ("no-master", "no MASTER"), ("split-brain", "several MASTERs"),
    ("unplanned", "unplanned failover"), ("planned", "planned failover"), ("claim", "claim (unconfirmed)"),
    ("latency", "recorded after (latency)"), ("quiet", "quiet stretch, drawn narrow"),
)  # fmt: skip


def file_name(name=None, pair=None):
    """
    The report's file name: ``name`` if it is a safe one (no folder, no ``..``, no leading dot, ends
    ``.html``), else :class:`InvalidValue` naming ``name``; by default ``lbpair-report.html``, or
    ``lbpair-report-<pair>.html`` for a pair whose name makes a safe one.
    """
    if name is None:
        for candidate in (f"lbpair-report-{pair}.html" if pair is not None else None, DEFAULT_NAME):
            if candidate and _safe(candidate):
                return candidate
    if not isinstance(name, str) or not _safe(name):
        raise InvalidValue("name", f"{name!r} is not a report's file name (letters, digits, '.', '_', '+', '-', ending .html; no folder)")
    return name


def _safe(name):
    return bool(NAME_RE.fullmatch(name)) and ".." not in name


def write(directory, name, records, now, pair=None, since=None):
    """
    Write the report of the history ``records`` (see :func:`~saltext.lbpair.master.report_model.picture`
    for ``pair`` and ``since``) as ``name`` (:func:`file_name`) in ``directory`` (created if missing,
    readable by its owner only); returns ``{"path": ..., "pairs": n, "transitions": n}``. Raises
    :class:`InvalidValue` for a bad name, :class:`LbpairError` if the page cannot be written.
    """
    target = os.path.join(directory, file_name(name, pair))
    shown = report_model.picture(records, now, pair=pair, since=since)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        store.write_private(target, page(shown, now).encode("utf-8"))
    except OSError as exc:
        raise LbpairError(f"name: could not write the report {target}: {exc.strerror or exc}") from None
    return {"path": target, "pairs": len(shown.pairs), "transitions": shown.transitions}


def page(picture, now):
    """The HTML page of ``picture`` (a :class:`~saltext.lbpair.master.report_model.Picture`), written at ``now``."""
    body = [_pair(index, pair, picture) for index, pair in enumerate(picture.pairs, 1)]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>lbpair failover report</title><style>{STYLE}</style></head><body>",
            _header(picture, now),
            "<main>",
            *(body or ['<p class="empty">The history holds no record in this time.</p>']),
            "</main></body></html>",
            "",
        ]
    )


def _header(picture, now):
    skipped = f'<p class="skipped">{counted(picture.skipped, "record")} with no readable time left out.</p>' if picture.skipped else ""
    legend = "".join(f'<span><i class="swatch {css}"></i>{esc(what)}</span>' for css, what in LEGEND)
    return (
        f'<header><h1>lbpair failover report</h1><p class="range" data-start="{picture.start:.3f}" data-end="{picture.end:.3f}">'
        f"From {_time(picture.start)} to {_time(picture.end)} UTC (written at {_time(now)}): "
        f"{counted(len(picture.pairs), 'pair')}, {counted(picture.transitions, 'transition')}.</p>{skipped}"
        f'<p class="legend">{legend}</p></header>'
    )


def _time(epoch, seconds=False):
    return f'<time datetime="{esc(when(epoch, True).replace(" ", "T"))}Z">{esc(when(epoch, seconds))}</time>'


def _pair(index, pair, picture):
    ident = f"pair-{index}"
    title = esc(pair.name) if pair.name else "(records that name no pair)"
    parts = [
        f'<section class="pair" id="{ident}" data-pair="{esc(pair.name)}" data-transitions="{pair.transitions}">',
        f"<h2>Pair {title}</h2>",
        *(_instance(f"{ident}-instance-{number}", instance, picture) for number, instance in enumerate(pair.instances, 1)),
    ]
    if pair.events:
        parts.append(_events(pair.events, "Records of the pair about no instance"))
    parts.append("</section>")
    return "\n".join(parts)


def _instance(ident, instance, picture):
    failovers = instance.failovers
    planned = sum(1 for row in failovers if row.planned)
    without = sum(span.end - span.start for span in instance.no_master)
    return "\n".join(
        [
            f'<section class="instance" id="{ident}" data-instance="{esc(instance.name)}" data-failovers-planned="{planned}"'
            f' data-failovers-unplanned="{len(failovers) - planned}" data-claims="{len(instance.claims)}"'
            f' data-no-master-seconds="{without:.3f}">',
            f"<h3>VRRP instance {esc(instance.name)}</h3>",
            _summary(instance, planned, without),
            f'<figure>{timeline(instance, picture.start, picture.end)}<figcaption>Who held which state when, from {_time(picture.start)}'
            f" to {_time(picture.end)} UTC.</figcaption></figure>",
            _transitions(instance.rows),
            _events(instance.events, "Other records of the instance") if instance.events else "",
            "</section>",
        ]
    )


def _summary(instance, planned, without):
    items = [
        ("Failovers", f"{len(instance.failovers) - planned} unplanned, {planned} planned"),
        ("Claims (unconfirmed)", str(len(instance.claims))),
        ("Without a MASTER", f"{duration(without)} in {counted(len(instance.no_master), 'span')}" if instance.no_master else "never"),
        ("Several MASTERs", counted(len(instance.split), "span") if instance.split else "never"),
    ]
    for which, what in (("recorded", "Recorded by the master after"), ("dns", "DNS pointed at the new MASTER after")):
        figures = report_model.summary(instance.latencies(which))
        if figures:
            items.append((what, f"median {duration(figures[0])}, at most {duration(figures[1])}"))
    return '<dl class="summary">' + "".join(f"<dt>{esc(term)}</dt><dd>{esc(value)}</dd>" for term, value in items) + "</dl>"


def _newest(rows):
    """The newest :data:`MAX_ROWS` of ``rows`` and a line saying how many older ones are left out."""
    left_out = len(rows) - MAX_ROWS
    if left_out <= 0:
        return rows, ""
    return rows[-MAX_ROWS:], f'<p class="left-out">{counted(left_out, "older row")} left out: see salt-run lbpair.history, or since=.</p>'


def _transitions(rows):
    shown, note = _newest(rows)
    head = "".join(
        f"<th>{what}</th>"
        for what in ("Time (UTC)", "Node", "Change", "Failover", "Seen", "Confirmed", "VIPs", "Recorded after", "DNS after")
    )
    body = "".join(_transition(row) for row in shown)
    return f'{note}<table class="transitions"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _transition(row):
    failover = ("planned" if row.planned else "unplanned") if row.failover else ""
    confirmed = row.record.get("confirmed") is not False
    css = " ".join(["transition", *([f"failover-{failover}"] if failover else []), *([] if confirmed else ["unconfirmed"])])
    cells = [
        _time(row.at, True),
        esc(row.text("minion")),
        f"{esc(row.text('previous_state') or '?')} \u2192 {esc(row.text('state'))}",
        failover or "\u2014",
        esc(row.text("seen")),
        "yes" if confirmed else "no",
        esc(_listed(row.record.get("vips"))),
        *(esc(duration(row.latencies[which])) if which in row.latencies else "" for which in ("recorded", "dns")),
    ]
    classes = ["at", "node", "change", "failover", "seen", "confirmed", "vips", "recorded", "dns"]
    tds = "".join(f'<td class="{name}">{cell}</td>' for name, cell in zip(classes, cells, strict=True))
    return f'<tr class="{css}" data-node="{esc(row.text("minion"))}" data-seq="{esc(row.text("seq"))}">{tds}</tr>'


def _listed(value):
    return ", ".join(report_model.text(item) for item in value) if isinstance(value, list) else report_model.text(value)


def _events(rows, caption):
    shown, note = _newest(rows)
    body = "".join(
        f'<tr class="event kind-{_kind(row)}" data-kind="{esc(row.text("kind"))}"><td>{_time(row.at, True)}</td>'
        f"<td>{esc(row.text('kind'))}</td><td>{esc(row.text('instance'))}</td><td>{esc(row.text('minion'))}</td>"
        f"<td>{esc(_what(row))}</td></tr>"
        for row in shown
    )
    head = "<tr><th>Time (UTC)</th><th>Kind</th><th>Instance</th><th>Node</th><th>What</th></tr>"
    return f'{note}<table class="events"><caption>{esc(caption)}</caption><thead>{head}</thead><tbody>{body}</tbody></table>'


def _kind(row):
    """A class for the row's kind: one of the kinds this version knows (``claim``, ``dns``...), else ``other``."""
    return row.kind.value.replace("_", "-") if row.kind else "other"


def _what(row):
    if row.kind is RecordKind.DNS:
        outcome = "ok" if row.record.get("ok") is True else f"failed: {row.text('error')}"
        return f"DNS pointed at {row.text('minion')}: {outcome} (attempts: {row.text('attempts')})"
    if row.kind is RecordKind.STEP_FAILED:
        return f"step {row.text('step')}: {row.text('message')}"
    return row.text("message")
