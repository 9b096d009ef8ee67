"""The architecture holds: one plain library, thin loader modules, tests that do not bend the path."""

import pathlib
import re

import pytest

from tests.conftest import REPO

LOADER_FOLDERS = ("_modules", "_states", "_beacons", "_runners")
SALT_DUNDERS = re.compile(r"__(salt|opts|pillar|grains|context|utils)__")


def python_files(*folders):
    return [path for folder in folders for path in sorted((REPO / folder).rglob("*.py"))]


@pytest.mark.parametrize("path", python_files("_utils"), ids=lambda path: path.name)
def test_the_library_uses_no_salt_dunders(path):
    assert not SALT_DUNDERS.search(path.read_text())


@pytest.mark.parametrize("path", python_files(*LOADER_FOLDERS), ids=lambda path: path.name)
def test_no_loader_module_reaches_a_sibling_through_salt(path):
    assert not re.search(r"__salt__\[[\"']lbpair", path.read_text())


@pytest.mark.parametrize("path", python_files("tests"), ids=lambda path: str(path.relative_to(REPO)))
def test_tests_do_not_insert_into_sys_path(path):
    assert "sys.path.insert" not in path.read_text() or path == pathlib.Path(__file__)


@pytest.mark.parametrize("path", python_files("lab", "bench"), ids=lambda path: str(path.relative_to(REPO)))
def test_lab_and_bench_do_not_import_tests(path):
    assert not re.search(r"^\s*(from|import) tests\b", path.read_text(), re.MULTILINE)


@pytest.mark.parametrize("path", python_files("lab", "bench"), ids=lambda path: str(path.relative_to(REPO)))
def test_lab_and_bench_do_not_load_tests_as_plugins(path):
    assert not re.search(r"pytest_plugins\s*=[^\]\)]*[\"']tests[.\"']", path.read_text())
