"""
Sphinx configuration of lbpair's documentation (``sphinx-build -W -b html docs <out>``; scripts/test builds it).

The pages are MyST Markdown; the Salt functions' reference is generated with autodoc from the docstrings of
the loader modules (``_modules``, ``_states``, ``_runners``, ``_beacons``), which use Salt's dunders only at
call time and so import like any module, as ``_modules.lbpair_haproxy`` and the like from the repository's root.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The repository's root for the loader folders (their modules share names: _modules.lbpair_haproxy and
# _states.lbpair_haproxy), _utils for the library they import.
sys.path[:0] = [str(REPO), str(REPO / "_utils")]

from saltext.lbpair import __version__  # noqa: E402  (importable once _utils is on sys.path)

project = "lbpair"
author = "lbpair's maintainers"
release = version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# Links to headings (`page.md#a-heading`) as GitHub makes them, so that the pages moved out of the README keep theirs.
myst_heading_anchors = 4
# Keep the source order of functions, as each module's docstring presents them.
autodoc_member_order = "bysource"
# Functions under their module's heading by the name Salt calls them (render, not _modules.lbpair_haproxy.render).
add_module_names = False
html_theme = "alabaster"
html_title = f"lbpair {release}"
