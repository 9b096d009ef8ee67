"""Shared test set-up: the repository's paths and the seed pillar."""

import copy
import pathlib
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def seed_pillar_session():
    with open(REPO / "salt" / "pillar.example", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["lbpair"]


@pytest.fixture
def seed_pillar(seed_pillar_session):
    """The seed scenario's ``lbpair`` pillar (foo, bar, baz), a fresh copy per test."""
    return copy.deepcopy(seed_pillar_session)
