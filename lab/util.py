"""Helpers shared by the lab modules: progress lines, command runs, owner records, removal.

Progress goes to stderr as ``lab [  12.3s] message`` so it stays out of captured stdout::

    from lab.util import log, run
    log("booting lb1")
    run(["ip", "netns", "add", "lbpair-sw"])
"""

import contextlib
import errno
import os
import pathlib
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

_START = time.monotonic()

#: Run-time state of labs on this host: machine dirs, owner records of namespaces.
RUN_ROOT = Path("/run/lbpair")


@contextlib.contextmanager
def sigterm_as_exit():
    """While active, SIGTERM raises :class:`SystemExit`, so ``with`` blocks and ``finally`` run.

    Python's default is to die at once on SIGTERM, leaving namespaces and mounts behind. Only
    the main thread can set handlers, and a handler someone else set is kept: then a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_system_exit(signum, _frame):
    """Signal handler: unwind the program with SystemExit(128 + signal number)."""
    raise SystemExit(128 + signum)


def log(message):
    """Print one progress line to stderr, prefixed with the seconds since import."""
    print(f"lab [{time.monotonic() - _START:7.1f}s] {message}", file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=None, capture=True, env=None, input=None):
    """Run *cmd* (a list) and return its :class:`subprocess.CompletedProcess`.

    Output is captured as text unless *capture* is false; stdin is *input* or /dev/null. With
    *check*, a non-zero exit raises :class:`CommandError`, whose message includes stderr. The
    command runs in its own session: on a timeout, Ctrl-C or any other exception its whole
    process group is killed (debootstrap's dpkg, pip's builds), then the exception goes on.
    """
    proc = subprocess.Popen(
        cmd,
        text=True,
        env=env,
        start_new_session=True,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    result = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise CommandError(cmd, result)
    return result


class CommandError(subprocess.CalledProcessError):
    """A command failed; ``str()`` shows the command line, exit code and captured stderr."""

    def __init__(self, cmd, proc):
        super().__init__(proc.returncode, cmd, proc.stdout, proc.stderr)

    def __str__(self):
        line = shlex.join(str(part) for part in self.cmd)
        detail = (self.stderr or "").strip() or (self.stdout or "").strip()
        return f"{line!r} exited {self.returncode}: {detail[-2000:]}"


def require_root():
    """Raise :class:`PermissionError` unless running as root (namespaces, mounts need it)."""
    if os.geteuid() != 0:
        raise PermissionError("the lbpair lab needs root (network namespaces, mounts, nspawn)")


def remove_tree(tree):
    """Delete *tree*, refusing if anything is still mounted below it (it could be the host's)."""
    tree = Path(tree)
    if not tree.exists():
        return
    prefix = str(tree.resolve()) + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if mount_point.startswith(prefix) or mount_point == prefix[:-1]:
            raise RuntimeError(f"refusing to delete {tree}: {mount_point} is mounted")

    def make_writable_and_retry(func, failed, _exc_info):
        os.chmod(os.path.dirname(failed), stat.S_IRWXU)
        func(failed)

    shutil.rmtree(tree, onerror=make_writable_and_retry)


#: psutil's status names as the state letters of /proc/PID/stat
STATE_LETTERS = {
    psutil.STATUS_RUNNING: "R", psutil.STATUS_SLEEPING: "S", psutil.STATUS_DISK_SLEEP: "D", psutil.STATUS_STOPPED: "T",
    psutil.STATUS_TRACING_STOP: "t", psutil.STATUS_ZOMBIE: "Z", psutil.STATUS_DEAD: "X", psutil.STATUS_IDLE: "I",
}  # fmt: skip


def process_token(pid=None):
    """Return ``"PID STARTTIME"`` for *pid* (default: this process), unique across PID reuse."""
    process = psutil.Process(pid or os.getpid())
    return f"{process.pid} {process.create_time()}"


def process_state(pid):
    """Return the one-letter state of *pid* (``R``, ``S``, ``T``, ``Z``...; '' if it is gone)."""
    try:
        return STATE_LETTERS.get(psutil.Process(int(pid)).status(), "?")
    except (psutil.NoSuchProcess, ValueError):
        return ""


def alive(pid):
    """Tell whether process *pid* runs; a zombie (dead, not reaped yet) counts as gone."""
    return process_state(pid) not in ("", "Z", "X")


def token_alive(token):
    """Tell whether the process named by a :func:`process_token` string is still running."""
    try:
        pid = int(token.split()[0])
        return alive(pid) and process_token(pid) == token.strip()
    except (psutil.NoSuchProcess, ValueError, IndexError):
        return False


def write_owner(record):
    """Write this process's token into *record* (a Path), creating its directory."""
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(process_token() + "\n")


def owner_alive(record):
    """Tell whether the process that wrote *record* still runs (False if it has no record)."""
    try:
        return token_alive(record.read_text())
    except FileNotFoundError:
        return False


def kill_all(find_pids, timeout=5.0):
    """SIGTERM the processes ``find_pids()`` lists, then SIGKILL what is left after *timeout* s."""
    # not psutil.wait_procs: it reaps this process's children, whose Popen would then lose their exit code
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [pid for pid in find_pids() if pid != os.getpid()]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [pid for pid in left if alive(pid)]
        if not left:
            return


def pids_mentioning(text):
    """The processes whose command line has *text* in one of its arguments (a config folder, say)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(text in argument for argument in process.info["cmdline"] or ()):
            found.append(process.pid)
    return found


def stop_process(process, timeout=10, sig=signal.SIGTERM):
    """Send *sig* to a Popen, wait up to *timeout* s, then kill it; a finished one is left alone."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until(predicate, timeout, interval=0.1, what="condition"):
    """Call *predicate* until it returns something true, and return that; TimeoutError after *timeout* s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout} s")


def free_port(address="127.0.0.1"):
    """A TCP port free on *address* right now."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def work_dir(prefix):
    """
    A short-named folder outside /tmp (each keepalived gets a /tmp of its own; Unix socket paths
    stay short), removed after the block unless ``LBPAIR_KEEP_WORKDIR`` is set (logs for a post-mortem).
    """
    path = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    try:
        yield path
    finally:
        if not os.environ.get("LBPAIR_KEEP_WORKDIR"):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def small_tmpfs(folder, size):
    """Mount a tmpfs of *size* (``256k``, ``4m``) on the existing *folder* for the block: a disk a test can fill."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "lbpair-test-disk", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


class Filler:
    """
    The file at *path* that takes every free page of its filesystem, and every page freed later
    (a file another process deleted while a process still held it open, closed at last) until
    :meth:`unlink`: the disk stays full however the processes around it close their files.
    """

    def __init__(self, path, page=4096):
        self.path = pathlib.Path(path)
        self.page = page
        self._handle = open(self.path, "ab", buffering=0)  # noqa: SIM115  (closed by unlink)
        self._stop = threading.Event()
        self._take()
        self._thread = threading.Thread(target=self._hold, name="filler", daemon=True)
        self._thread.start()

    def _take(self):
        try:
            while True:
                self._handle.write(b"\0" * self.page)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise

    def _hold(self):
        while not self._stop.wait(0.01):
            self._take()

    def unlink(self):
        """Give every page back at once."""
        self._stop.set()
        self._thread.join()
        self._handle.close()
        self.path.unlink()


def fill(folder, page=4096):
    """Take every free page of *folder*'s filesystem, and those freed later; returns the :class:`Filler` (unlink it to make room)."""
    return Filler(pathlib.Path(folder) / "filler", page)
