"""Benchmarks, run from the repository's root as ``.venv/bin/python -m bench.NAME``."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "_utils"))  # saltext.lbpair, as the synced _utils folder gives it
