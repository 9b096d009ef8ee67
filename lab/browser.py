"""Debian's headless Chromium, for what the report page looks like in a browser (its DOM, a screenshot)."""

import shutil
import subprocess
import tempfile

CHROMIUM = shutil.which("chromium")


def chromium(*arguments, timeout=60):
    """Run headless Chromium (as root it needs ``--no-sandbox``) with a throwaway profile; its standard output."""
    with tempfile.TemporaryDirectory(prefix="lbpair-chromium-") as profile:
        command = [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *arguments]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True).stdout


def dom(page):
    """The DOM Chromium built from the file *page*, serialised."""
    return chromium("--dump-dom", f"file://{page}")


def screenshot(page, png, width=1280, height=900):
    """A PNG of the file *page* as Chromium draws it in a window of *width* x *height*."""
    chromium(f"--screenshot={png}", f"--window-size={width},{height}", f"file://{page}")
    return png
