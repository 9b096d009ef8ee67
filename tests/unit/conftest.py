"""Unit tests import the pure functions of the execution modules directly."""

import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "_modules"))
