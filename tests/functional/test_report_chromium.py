"""
The failover report as a browser reads it: ``salt-run lbpair.report`` (the runner, through Salt's
loader) writes the page of a history the library wrote, Debian's headless Chromium parses it
(``--dump-dom``: the elements are there after the browser built its DOM, hostile names stayed
text) and takes a screenshot, kept in the test's folder (its path is printed).
"""

import pytest
import salt.loader
from salt.exceptions import SaltInvocationError

from lab import browser
from saltext.lbpair.core.errors import printable
from tests.conftest import EXTENSION_DIRS
from tests.unit.test_report import HOSTILE_TEXT, Elements, failover_story

HOSTILE = dict(HOSTILE_TEXT)["an SVG title closed early"]

pytestmark = [
    pytest.mark.skipif(browser.CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.timeout(240),
]


@pytest.fixture(autouse=True)
def in_node_namespace():
    """Chromium reads a file: this module does without the suite's node namespace."""
    yield


@pytest.fixture
def runners(salt_factories, tmp_path):
    reactions = {"history": {"path": str(tmp_path / "history.jsonl")}, "report_dir": str(tmp_path / "reports")}
    opts = salt_factories.salt_master_daemon("report", overrides={**EXTENSION_DIRS, "lbpair_reactions": reactions}).config.copy()
    return salt.loader.runner(opts, utils=salt.loader.utils(opts))


def test_chromium_finds_the_report_elements_and_takes_a_screenshot(runners, tmp_path):
    failover_story(tmp_path / "history.jsonl", pair="web")
    failover_story(tmp_path / "history.jsonl", pair=HOSTILE, nodes=(HOSTILE, "lb4"), instance="lbpair_52")
    result = runners["lbpair.report"]()
    assert result == {"path": str(tmp_path / "reports" / "lbpair-report.html"), "pairs": 2, "transitions": 14}

    page = Elements(browser.dom(result["path"]))
    assert sorted(attrs["data-pair"] for attrs in page.select("section", ["pair"])) == sorted(["web", printable(HOSTILE)])
    assert page.select("section", ["instance"], instance="lbpair_51") and page.select("section", ["instance"], instance="lbpair_52")
    assert {attrs["data-node"] for attrs in page.select("g", ["band"])} == {"lb1", "lb2", printable(HOSTILE), "lb4"}
    assert len(page.select("g", ["failover", "unplanned"])) == 4 and len(page.select("g", ["failover", "planned"])) == 2
    assert len(page.select("circle", ["claim"])) == 2 and len(page.select("rect", ["no-master"])) == 2
    assert len(page.select("table", ["transitions"])) == 2 and len(page.select("rect", ["latency"])) == 14
    assert not page.select("script") and not page.select("img")  # the hostile name stayed text in the browser's DOM

    shot = tmp_path / "report.png"
    browser.screenshot(result["path"], shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"the report's screenshot: {shot}")


def test_the_runner_refuses_a_path_and_a_bad_since(runners, tmp_path):
    for name in ("../escape.html", "/tmp/x.html", ".x.html"):
        with pytest.raises(SaltInvocationError, match="^name: "):
            runners["lbpair.report"](name=name)
    with pytest.raises(SaltInvocationError, match="^since: "):
        runners["lbpair.report"](since="last tuesday")
    assert not (tmp_path / "reports").exists() and not list(tmp_path.parent.glob("escape.html"))


def test_the_runner_writes_one_pair_from_since_under_its_name(runners, tmp_path):
    failover_story(tmp_path / "history.jsonl", pair="web")
    failover_story(tmp_path / "history.jsonl", pair="shop", nodes=("lb3", "lb4"))
    result = runners["lbpair.report"](pair="shop", since=1_790_000_050)
    assert result == {"path": str(tmp_path / "reports" / "lbpair-report-shop.html"), "pairs": 1, "transitions": 5}
