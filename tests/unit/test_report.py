"""
The failover report: the page holds what the history tells (a section per pair and instance, a
band per node, failovers planned and unplanned, claims, time without a MASTER, latencies, the
transitions' table), the same history writes the same bytes, hostile text from the nodes stays
text, and the page goes nowhere but its folder under a safe name.
"""

import html.parser
import os

import pytest

from saltext.lbpair.core.errors import InvalidValue, printable
from saltext.lbpair.master import reactions_config, records, report, report_model, report_scale
from saltext.lbpair.master.chronicle import Chronicle
from saltext.lbpair.master.history import History
from saltext.lbpair.master.records import Seen, Transition

T = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
NOW = T + 400


def move(history, pair, minion, seq, previous, state, at, latency=0.8, instance="lbpair_51", planned=False, vips=("203.0.113.10",)):
    """A transition of ``minion`` at ``T + at``, recorded by the master ``latency`` seconds later, as the reactions record it."""
    entry = {"seq": seq, "instance": instance, "state": state, "previous_state": previous, "vips": list(vips), "time": T + at}
    transition = Transition.confirmed_from(entry, minion, Seen.LIVE, T + at + latency, pair)
    history.append([transition.marked_planned() if planned else transition])


def note(history, pair, at, record):
    Chronicle(history, clock=lambda: T + at, pair=pair).note(record)


def failover_story(path, pair="web", nodes=("lb1", "lb2"), instance="lbpair_51"):
    """
    A pair's story: ``a`` becomes MASTER, fails at 100 s, ``b`` takes over at 103 s (3 s without
    a MASTER, DNS follows at 104.5 s), a claim of ``a`` at 150 s, ``a`` back at 200 s, a planned
    switchover to ``a`` at 300 s (0.4 s with two MASTERs).
    """
    a, b = nodes
    history = History(str(path))
    move(history, pair, a, 1, "BACKUP", "MASTER", 0, instance=instance)
    move(history, pair, b, 1, "INIT", "BACKUP", 1, instance=instance)
    move(history, pair, a, 2, "MASTER", "FAULT", 100, instance=instance)
    move(history, pair, b, 2, "BACKUP", "MASTER", 103, latency=1.2, instance=instance)
    note(history, pair, 104.5, records.dns(instance, b, True, 1, None))
    claim = records.claim({"seq": 9, "instance": instance, "state": "MASTER", "previous_state": "BACKUP"}, a, T + 150)
    note(history, pair, 150, claim)
    move(history, pair, a, 3, "FAULT", "BACKUP", 200, instance=instance)
    note(history, pair, 250, records.maintenance(a, f"{a} in maintenance until released"))
    move(history, pair, a, 4, "BACKUP", "MASTER", 300, planned=True, instance=instance)
    move(history, pair, b, 3, "MASTER", "BACKUP", 300.4, planned=True, instance=instance)
    return history


class Elements(html.parser.HTMLParser):
    """Every start tag of a page with its attributes, as a browser's tokenizer reads them."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.found = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def select(self, tag=None, classes=(), **data):
        """The attributes of the elements that are ``tag`` (any if ``None``), have ``classes`` and ``data-*`` values."""
        wanted = {f"data-{key.replace('_', '-')}": value for key, value in data.items()}
        return [
            attrs
            for name, attrs in self.found
            if (tag is None or name == tag)
            and set(classes) <= set((attrs.get("class") or "").split())
            and all(attrs.get(key) == value for key, value in wanted.items())
        ]


@pytest.fixture
def written(tmp_path):
    history = failover_story(tmp_path / "history.jsonl")
    result = report.write(str(tmp_path / "reports"), None, history.read(), NOW)
    return result, Elements(open(result["path"], encoding="utf-8").read())


def test_the_page_has_a_section_per_pair_and_instance_and_a_band_per_node(written):
    result, page = written
    assert result == {"path": result["path"], "pairs": 1, "transitions": 7} and result["path"].endswith("/reports/lbpair-report.html")
    assert len(page.select("section", ["pair"], pair="web")) == 1
    (instance,) = page.select("section", ["instance"], instance="lbpair_51")
    assert len(page.select("g", ["band"], node="lb1")) == 1 and len(page.select("g", ["band"], node="lb2")) == 1
    assert len(page.select("table", ["transitions"])) == 1 and len(page.select("tr", ["transition"])) == 7


def test_failovers_are_marked_planned_or_unplanned_and_claims_shown(written):
    _, page = written
    assert [attrs["data-node"] for attrs in page.select("g", ["failover", "unplanned"])] == ["lb1", "lb2"]
    assert [attrs["data-node"] for attrs in page.select("g", ["failover", "planned"])] == ["lb1"]
    assert [attrs["data-node"] for attrs in page.select("circle", ["claim"])] == ["lb1"]
    (instance,) = page.select("section", ["instance"])
    assert (instance["data-failovers-unplanned"], instance["data-failovers-planned"], instance["data-claims"]) == ("2", "1", "1")


def test_time_without_a_master_and_with_two_is_highlighted(written):
    _, page = written
    (gap,) = page.select("rect", ["no-master"])
    assert float(gap["data-end"]) - float(gap["data-start"]) == pytest.approx(3.0)
    assert page.select("section", ["instance"])[0]["data-no-master-seconds"] == "3.000"
    (split,) = page.select("rect", ["split-brain"])
    assert float(split["data-end"]) - float(split["data-start"]) == pytest.approx(0.4)


def test_latencies_are_drawn_and_tabled(written):
    _, page = written
    assert sorted(float(attrs["data-seconds"]) for attrs in page.select("rect", ["latency"])) == pytest.approx([0.8] * 6 + [1.2])
    text = open(written[0]["path"], encoding="utf-8").read()
    assert '<td class="recorded">1.20 s</td><td class="dns">1.50 s</td>' in text


def test_the_same_history_writes_the_same_bytes(tmp_path):
    history = failover_story(tmp_path / "history.jsonl")
    first = report.write(str(tmp_path / "one"), None, history.read(), NOW)
    second = report.write(str(tmp_path / "two"), None, history.read(), NOW)
    assert open(first["path"], "rb").read() == open(second["path"], "rb").read()


def test_the_page_is_self_contained_and_has_no_script(written):
    result, page = written
    text = open(result["path"], encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text.lower()
    assert not [attrs for _, attrs in page.found if {"src", "href"} & set(attrs) or any(key.startswith("on") for key in attrs)]
    assert "default-src 'none'" in text


def test_since_starts_with_the_states_held_before_it(tmp_path):
    history = failover_story(tmp_path / "history.jsonl")
    picture = report_model.picture(history.read(), NOW, since=T + 50)
    (instance,) = picture.pairs[0].instances
    assert [(span.state, span.start) for span in instance.spans["lb1"]][0] == ("MASTER", T + 50)
    assert [row.text("seq") for row in instance.rows] == ["2", "2", "3", "4", "3"] and picture.transitions == 5


def test_pair_names_the_pair_shown_and_the_default_file(tmp_path):
    path = tmp_path / "history.jsonl"
    failover_story(path, pair="web")
    failover_story(path, pair="shop", nodes=("lb3", "lb4"))
    result = report.write(str(tmp_path / "reports"), None, History(str(path)).read(), NOW, pair="shop")
    page = Elements(open(result["path"], encoding="utf-8").read())
    assert result["path"].endswith("/lbpair-report-shop.html") and result["pairs"] == 1
    assert [attrs["data-pair"] for attrs in page.select("section", ["pair"])] == ["shop"]
    both = report.write(str(tmp_path / "reports"), None, History(str(path)).read(), NOW)
    assert [attrs["data-pair"] for attrs in Elements(open(both["path"], encoding="utf-8").read()).select("section", ["pair"])] == ["shop", "web"]


def test_an_empty_history_writes_a_page_that_says_so(tmp_path):
    result = report.write(str(tmp_path), None, [], NOW)
    assert (result["pairs"], result["transitions"]) == (0, 0)
    assert Elements(open(result["path"], encoding="utf-8").read()).select("p", ["empty"])


def test_a_long_history_shows_its_newest_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "MAX_ROWS", 3)
    history = failover_story(tmp_path / "history.jsonl")
    page = Elements(open(report.write(str(tmp_path), None, history.read(), NOW)["path"], encoding="utf-8").read())
    assert [attrs["data-seq"] for attrs in page.select("tr", ["transition"])] == ["3", "4", "3"] and page.select("p", ["left-out"])


def test_a_long_quiet_stretch_is_drawn_narrow_and_a_busy_span_to_scale(tmp_path):
    history = failover_story(tmp_path / "history.jsonl")
    weeks_later = Elements(open(report.write(str(tmp_path / "a"), None, history.read(), T + 30 * 86400)["path"], encoding="utf-8").read())
    (quiet,) = weeks_later.select("rect", ["quiet"])
    assert float(quiet["width"]) == report_scale.QUIET_WIDTH
    assert not Elements(open(report.write(str(tmp_path / "b"), None, history.read(), NOW)["path"], encoding="utf-8").read()).select(
        "rect", ["quiet"]
    )


@pytest.mark.parametrize(
    "end, moments, quiet",
    [
        (900, [], []),  # nothing happened: all to scale
        (400, [100, 103, 300], []),  # a busy span
        (86400, [100, 101], [(101, 86400)]),  # a day after a failover
        (86400, [10, 20, 40000, 40010], [(40010, 86400), (20, 40000)]),  # two quiet stretches, each longer than the rest
        (900, [300], [(300, 900)]),  # ten minutes after five
        (500, [300], []),  # shorter than QUIET_MIN
    ],
)
def test_the_scale_narrows_the_stretches_longer_than_the_rest(end, moments, quiet):
    scale = report_scale.Scale(0, end, 170, 985, moments)
    assert sorted((s.start, s.end) for s in scale.stretches if s.quiet) == sorted(quiet)
    assert scale.x(0) == 170 and scale.x(end) == 985 and scale.x(-5) == 170 and scale.x(end * 2) == 985
    xs = [scale.x(moment) for moment in sorted({0, *moments, end})]
    assert xs == sorted(xs)


#: text a node (or whoever writes the history) could put in a name, and which must stay text
HOSTILE_TEXT = [
    ("a script element", "<script>alert(1)</script>"),
    ("an attribute breakout", '"><svg onload=alert(1)>'),
    ("a single-quoted attribute breakout", "lb1' onmouseover='alert(1)"),
    ("an SVG title closed early", "</title></svg><img src=x onerror=alert(1)>"),
    ("a comment opened", "<!-- x"),
    ("a CDATA end and an entity", "]]>&amp;&lt;"),
    ("a line break and a terminal escape", "lb1\n\x1b[31mall clear"),
    ("a NUL", "lb\x00one"),
    ("a right-to-left override", "lb\u202e1lmth.exe"),
    ("a lone surrogate", "lb\ud8001"),
    ("a name of 10,000 characters", "x" * 10_000),
]  # fmt: skip
HOSTILE_IDS = [what for what, _ in HOSTILE_TEXT]
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "main", "h1", "h2", "h3", "p", "span", "i", "time", "section",
    "dl", "dt", "dd", "figure", "figcaption", "svg", "g", "rect", "line", "path", "text", "circle", "table", "caption", "thead",
    "tbody", "tr", "th", "td",
}  # fmt: skip


@pytest.mark.parametrize("hostile", [text for _, text in HOSTILE_TEXT], ids=HOSTILE_IDS)
def test_hostile_names_of_pair_node_instance_and_state_stay_text(tmp_path, hostile):
    path = tmp_path / "history.jsonl"
    failover_story(path, pair=hostile, nodes=(hostile, f"{hostile}2"), instance=hostile)
    history = History(str(path))
    move(history, hostile, hostile, 9, hostile, hostile, 350, instance=hostile, vips=[hostile])
    note(history, hostile, 360, records.warning(hostile, hostile, hostile))
    result = report.write(str(tmp_path / "reports"), None, history.read(), NOW, pair=hostile)
    page = Elements(open(result["path"], encoding="utf-8").read())
    assert {tag for tag, _ in page.found} <= ALLOWED_TAGS
    assert not [attrs for _, attrs in page.found if any(key.startswith("on") or key in ("src", "href") for key in attrs)]
    shown = printable(hostile)
    assert page.select("section", ["pair"], pair=shown) and page.select("section", ["instance"], instance=shown)
    assert page.select("g", ["band"], node=shown) and page.select("rect", ["span", "state-other"], state=shown)
    assert page.select("g", ["failover", "unplanned"], node=shown) and page.select("g", ["failover", "planned"], node=shown)
    assert page.select("tr", ["transition"], node=shown, seq="9")


def test_records_with_unreadable_times_or_odd_values_are_skipped_or_shown_as_text(tmp_path):
    odd = [
        {"kind": "transition", "pair": "web", "minion": "lb1", "seq": 1, "instance": "lbpair_51", "state": "MASTER", "at": when}
        for when in ("yesterday", "1e400", float("nan"), -1e15, {"at": 1}, None)
    ]  # fmt: skip
    odd.append({"kind": ["transition"], "pair": "web", "minion": ["lb1"], "seq": {"x": 1}, "instance": 51, "state": 2, "at": T + 5,
                "vips": {"203.0.113.10": True}, "recorded_at": "never", "planned": "yes"})  # fmt: skip
    odd += ["not a record", 7]
    result = report.write(str(tmp_path), None, odd, NOW)
    text = open(result["path"], encoding="utf-8").read()
    assert "6 records with no readable time left out" in text and result["pairs"] == 1
    assert Elements(text).select("section", ["instance"], instance="51")


@pytest.mark.parametrize(
    "name",
    ["../lbpair-report.html", "/etc/cron.d/x.html", "reports/x.html", ".hidden.html", "x..html", "..html", "x.htm", "x.html/",
     "x.html\n", "x y.html", "rapport-\u00e9t\u00e9.html", "", "x" * 200 + ".html", ["x.html"], 5, "x.html\x00.txt"],
)  # fmt: skip
def test_a_name_that_is_not_a_plain_html_file_name_is_refused(tmp_path, name):
    folder = tmp_path / "reports"
    with pytest.raises(InvalidValue) as error:
        report.write(str(folder), name, [], NOW)
    assert error.value.path == "name" and str(error.value).startswith("name: ")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["lbpair-report.html", "web+shop_2026-11.html", "A.html"])
def test_a_plain_html_file_name_is_written_in_the_folder(tmp_path, name):
    assert report.write(str(tmp_path), name, [], NOW)["path"] == str(tmp_path / name)
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o600


def test_a_pair_whose_name_makes_no_safe_file_name_gets_the_default_one():
    assert report.file_name(None, "<x>/../y") == "lbpair-report.html" and report.file_name(None, "web") == "lbpair-report-web.html"


def test_a_symlink_planted_at_the_name_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "lbpair-report.html").symlink_to(outside)
    report.write(str(folder), None, [], NOW)
    assert outside.read_text() == "precious\n" and not (folder / "lbpair-report.html").is_symlink()
    assert sorted(os.listdir(folder)) == ["lbpair-report.html"]


def test_the_report_folder_is_configured_or_under_the_cachedir():
    assert reactions_config.report_dir(reactions_config.normalise({}), "/var/cache/salt/master") == "/var/cache/salt/master/lbpair/reports"
    config = reactions_config.normalise({"report_dir": "/srv/lbpair-reports"})
    assert reactions_config.report_dir(config, "/var/cache/salt/master") == "/srv/lbpair-reports"


@pytest.mark.parametrize("value", ["reports", "/srv/../etc", "/srv//x", "", ["/srv"], "/srv/x\n"])
def test_a_report_folder_that_is_not_an_absolute_plain_path_is_refused(value):
    with pytest.raises(InvalidValue) as error:
        reactions_config.normalise({"report_dir": value})
    assert error.value.path == "lbpair_reactions:report_dir"
