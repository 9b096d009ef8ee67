"""Shared test set-up: the repository's paths, the seed pillar, salt-factories on loopback."""

import copy
import pathlib
import shutil
import subprocess
import sys

import pytest

from lab.salt_master import EXTENSION_DIRS  # noqa: F401  (the suites' minion and master options)

#: Salt's daemons on loopback (lab/salt_rig.py, shared with bench/), then the shared rigs
#: (tests/support/): the session's salt-master and minions, syndics below it, the reactions' receivers,
#: a keepalived pair
pytest_plugins = [
    "lab.salt_rig", "tests.support.session", "tests.support.syndic", "tests.support.receivers", "tests.support.pair",
]  # fmt: skip

REPO = pathlib.Path(__file__).resolve().parent.parent
#: each test's time limit (pytest-timeout) by suite, unless it sets its own: a hang fails that test
#: instead of eating CI's budget; the integration suites keep setup.cfg's 600 s
TIME_LIMITS = {"unit": 60, "functional": 300}


def pytest_collection_modifyitems(items):
    for item in items:
        suite = pathlib.Path(item.fspath).relative_to(REPO / "tests").parts[0]
        if suite in TIME_LIMITS and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIME_LIMITS[suite]))


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture
def seed_pillar(seed_pillar_session):
    """The seed scenario's ``lbpair`` pillar (foo, bar, baz), a fresh copy per test."""
    return copy.deepcopy(seed_pillar_session)


@pytest.fixture(scope="session")
def source_tree(tmp_path_factory):
    """A copy of the checkout as a source distribution has it: pip builds in the source folder, and
    a ``build/`` left there by an earlier build (or a venv) must not find its way into the package."""
    copy = tmp_path_factory.mktemp("source") / "saltext-lbpair"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "docs"))
    return copy


@pytest.fixture(scope="session")
def pip_installed(tmp_path_factory, source_tree):
    """``pip install .`` (without dependencies) into a folder of its own: put it on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(source_tree)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return target
