"""Running the daemons' own tools (``haproxy -c``, ``keepalived --version``, ``iptables``, ``nft``)."""

import collections
import subprocess

from saltext.lbpair.core.errors import LbpairError

Done = collections.namedtuple("Done", "returncode stdout stderr")


def run(command, timeout=60, check=False, stdin_text=None):
    """
    Run ``command`` (a list, never through a shell), given ``stdin_text`` on its standard
    input if any; with ``check``, a non-zero exit raises :class:`LbpairError` with its output.
    """
    try:
        done = subprocess.run(command, input=stdin_text, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LbpairError(f"cannot run {command[0]}: {exc}") from None
    if check and done.returncode != 0:
        raise LbpairError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")
    return Done(done.returncode, done.stdout, done.stderr)
