"""Lab harness tests: skipped where they cannot run (not root, or a host tool missing)."""

import os
import shutil

import pytest

HOST_TOOLS = ("ip", "nsenter", "unshare", "systemd-nspawn", "debootstrap")


def pytest_collection_modifyitems(items):
    """Skip ``lab``-marked tests here when not root or a tool is missing (scripts/setup)."""
    missing = [tool for tool in HOST_TOOLS if not shutil.which(tool)]
    reason = "needs root" if os.geteuid() != 0 else f"needs {', '.join(missing)}" if missing else ""
    if not reason:
        return
    for item in items:
        if item.get_closest_marker("lab") and "tests/integration/lab/" in str(item.path):
            item.add_marker(pytest.mark.skip(reason=f"lab harness test {reason}"))
