"""Lab machines: the cached Debian root booted with systemd-nspawn inside a lab namespace.

Each Machine gets its own overlayfs (lower: the cached root, read-only; upper, work and
merged under ``/run/lbpair/machines/<name>/``), so machines share one root and never change
it. The container joins an existing lab network namespace, boots systemd as PID 1 with a
system bus, and runs the units the root enables (salt-minion among them). Example::

    from lab.machine import Machine

    with Machine("lb1", "lbpair-lb1") as lb1:
        lb1.boot({"/etc/hostname": "lb1\\n"})
        print(lb1.run(["systemctl", "is-system-running"]).stdout)

The host runs no systemd, so nothing gives nspawn a cgroup of its own. Started from the root
cgroup, ``--keep-unit`` would make two containers share ``/payload`` and their systemds would
fight over one tree; each Machine therefore starts nspawn in its own cgroup
``lbpair/<name>`` in every named-systemd and cgroup2 hierarchy, and removes it afterwards.
"""

import contextlib
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from lab import netns as lab_netns
from lab import rootfs
from lab.util import (
    RUN_ROOT,
    alive,
    log,
    owner_alive,
    process_state,
    remove_tree,
    run,
    write_owner,
)

RUN_DIR = RUN_ROOT / "machines"
CAPABILITIES = ("CAP_NET_ADMIN", "CAP_NET_RAW")
CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}
CGROUP_GROUP = "lbpair"


class MachineError(RuntimeError):
    """A machine failed to boot or to run a command; the message ends with its console log."""


class Machine:
    """One systemd-nspawn container booted from the cached root in network namespace *netns*.

    *root* defaults to :func:`lab.rootfs.ensure`. *name* is the machine name (``lb1``); its
    files live in ``/run/lbpair/machines/<name>/``: ``upper/``, ``work/``, ``merged/``,
    ``console.log`` and ``owner`` (the process that booted it).
    """

    def __init__(self, name, netns, root=None):
        lab_netns.check_name(netns)
        self.name = name
        self.netns = netns
        self.root = Path(root) if root else None
        self.dir = RUN_DIR / name
        self.merged = self.dir / "merged"
        self.console_log = self.dir / "console.log"
        self.process = None  # the systemd-nspawn Popen
        self.pid = None  # the container's PID 1 (systemd) as seen from the host
        self._owns_dir = False  # this object made self.dir, so shutdown may remove it
        self._pidns = None  # the container's PID namespace, e.g. "pid:[4026532301]"

    def __repr__(self):
        return f"Machine({self.name!r}, {self.netns!r}, pid={self.pid})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def boot(self, files=None, timeout=60):
        """Mount the overlay, write *files* ({container path: text}), boot, wait until running.

        Returns the state systemd reached (``running`` or ``degraded``). On failure or timeout the
        machine is shut down and :class:`MachineError` carries the end of the console log.
        """
        self.start(files)
        return self.wait_until_running(timeout)

    def start(self, files=None):
        """Mount the overlay, write *files* into its upper layer and start nspawn; do not wait.

        Lets a caller start several machines before waiting for any (see :meth:`boot`).
        """
        if self.process is not None:
            raise MachineError(f"{self.name} is already started")
        try:
            self._mount_overlay(self.root or rootfs.ensure())
            for path, text in (files or {}).items():
                self._write_file(path, text)
            self._start_nspawn()
        except BaseException:
            self.shutdown()
            raise

    def wait_until_running(self, timeout=60):
        """Wait until systemd in the container finished booting; return ``running``/``degraded``.

        Shuts the machine down and raises :class:`MachineError` on timeout or early exit.
        """
        deadline = time.monotonic() + timeout
        try:
            self.pid = self._wait_for_leader(deadline)
            self._pidns = os.readlink(f"/proc/{self.pid}/ns/pid")
            state = self._wait_for_boot(deadline)
        except BaseException as exc:
            message = f"{self.name} did not boot: {exc}\n{self.console_tail()}"
            self.shutdown()
            if isinstance(exc, (MachineError, TimeoutError, OSError)):
                raise MachineError(message) from exc
            raise
        log(f"{self.name} booted: {state}")
        return state

    def run(self, cmd, check=True, timeout=60, input=None):
        """Run *cmd* (a list) inside the booted container via ``nsenter -t PID -a``.

        Returns the :class:`subprocess.CompletedProcess` (text stdout/stderr); with *check*, a
        non-zero exit raises :class:`lab.util.CommandError`.
        """
        if self.pid is None:
            raise MachineError(f"{self.name} is not running")
        return run(
            self.nsenter_prefix() + list(cmd),
            check=check,
            timeout=timeout,
            input=input,
            env=CONTAINER_ENV,
        )

    def popen(self, cmd, **kwargs):
        """Start *cmd* inside the container in the background; returns the :class:`Popen`.

        Keyword arguments go to Popen (``env`` defaults to a clean container environment). The
        process lives in the container's PID namespace and ends with the machine at the latest.
        """
        if self.pid is None:
            raise MachineError(f"{self.name} is not running")
        kwargs.setdefault("env", CONTAINER_ENV)
        return subprocess.Popen(self.nsenter_prefix() + list(cmd), **kwargs)

    def nsenter_prefix(self):
        """Return the command prefix that enters this container (for Popen or a shell)."""
        return ["nsenter", "-t", str(self.pid), "-a"]

    def poweroff(self):
        """Ask the container to power off (SIGTERM to nspawn forwards SIGRTMIN+3); do not wait."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def power_cut(self):
        """Stop the machine at once, as a power failure does: PID 1 and nspawn killed, no shutdown.

        The overlay stays mounted: :meth:`boot_again` boots the same disk.
        """
        if self.process is None:
            raise MachineError(f"{self.name} is not running")
        self._kill()
        self.process = self.pid = None

    def boot_again(self, timeout=60):
        """Boot the machine again on its disk as it was left (after :meth:`power_cut`)."""
        self._start_nspawn()
        return self.wait_until_running(timeout)

    def shutdown(self, timeout=20):
        """Power off (then kill after *timeout* s), unmount the overlay, remove the run dir.

        Idempotent and safe after a failed or partial start; never touches a run dir that this
        object did not create (another lab's machine of the same name).
        """
        if self.process is not None:
            self.poweroff()
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                self._continue_stopped_nsenters()
                time.sleep(0.1)
            if self.process.poll() is None:
                log(f"{self.name} did not power off in {timeout}s; killing it")
                self._kill()
            self.process = None
        self.pid = None
        if self._owns_dir:
            _remove_cgroups(self.name)
            _unmount(self.merged)
            _remove_run_dir(self.dir)
            self._owns_dir = False

    def console_tail(self, lines=40):
        """Return the last *lines* lines of the container's console log ('' if none)."""
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    # --- internals ------------------------------------------------------------------------------

    def _mount_overlay(self, lower):
        """Mount the overlay (lower: the cached root) at ``merged`` under the run dir."""
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        try:
            self.dir.mkdir()
        except FileExistsError:
            message = f"{self.dir} exists: a lab runs, or crashed (python -m lab down)"
            raise MachineError(message) from None
        self._owns_dir = True
        write_owner(self.dir / "owner")
        for sub in ("upper", "work", "merged"):
            (self.dir / sub).mkdir()
        options = f"lowerdir={lower},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}"
        run(["mount", "-t", "overlay", f"lbpair-{self.name}", "-o", options, str(self.merged)])

    def _write_file(self, path, text):
        """Write *text* at container path *path* in the upper layer (mode 0644, parents 0755)."""
        if not str(path).startswith("/") or ".." in Path(path).parts:
            raise ValueError(f"container paths are absolute, without '..': {path!r}")
        target = self.dir / "upper" / str(path).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o644)

    def _start_nspawn(self):
        """Start systemd-nspawn in its own cgroup and session, console to ``console.log``."""
        cgroup_files = _make_cgroups(self.name)
        nspawn = [
            "systemd-nspawn",
            "--quiet",
            f"--directory={self.merged}",
            "--boot",
            "--register=no",
            "--keep-unit",
            f"--capability={','.join(CAPABILITIES)}",
            f"--network-namespace-path={lab_netns.path(self.netns)}",
            f"--machine={self.name}",
            "--console=read-only",
            "--link-journal=no",
            "--resolv-conf=off",
            "--timezone=off",
        ]
        moves = "".join(f"echo $$ > {shlex.quote(str(f))} && " for f in cgroup_files)
        script = f"{moves}exec {shlex.join(nspawn)}"
        log(f"starting {self.name} in {self.netns}")
        with open(self.console_log, "wb") as console:
            self.process = subprocess.Popen(
                ["sh", "-c", script],
                # The machine has a network namespace of its own, so its /proc/sys/net may be
                # writable, as with --private-network (which nspawn does not infer from
                # --network-namespace-path): the salt/ tree sets net.ipv4.ip_nonlocal_bind.
                env={**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"},
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches Python, which shuts machines down
            )

    def _wait_for_leader(self, deadline):
        """Return the PID of the container's systemd (a child of nspawn named ``systemd``)."""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MachineError(f"systemd-nspawn exited with {self.process.returncode}")
            leader = _systemd_child(self.process.pid)
            if leader:
                return leader
            time.sleep(0.05)
        raise TimeoutError("systemd did not start in the container")

    def _wait_for_boot(self, deadline):
        """Poll ``systemctl is-system-running --wait`` until it answers running or degraded.

        Only ``maintenance`` (emergency or rescue mode) and ``stopping`` are final. In the first
        milliseconds after systemd's exec, before it creates ``/run/systemd/system``, systemctl
        answers ``offline`` (``sd_booted()`` is false); then, until the manager listens,
        nothing but "Failed to connect to bus". Both mean "not yet": they count until
        *deadline*, and the timeout names the last answer.
        """
        answer = "no answer"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"boot did not finish; systemctl answered: {answer}")
            if self.process.poll() is not None:
                raise MachineError(f"systemd-nspawn exited with {self.process.returncode}")
            try:
                proc = self.run(
                    ["systemctl", "is-system-running", "--wait"], check=False, timeout=remaining
                )
            except subprocess.TimeoutExpired:
                continue
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                return state
            if state in ("maintenance", "stopping"):
                raise MachineError(f"systemd state {state}")
            answer = state or proc.stderr.strip() or f"exit status {proc.returncode}"
            time.sleep(0.2)

    def _continue_stopped_nsenters(self):
        """Send SIGCONT to host ``nsenter`` processes stopped because their child was stopped.

        Before its final SIGTERM, systemd-shutdown stops every process with ``kill(-1,
        SIGSTOP)`` and later continues them, but only inside the container's PID namespace.
        An nsenter (of :meth:`run`, :meth:`popen` or a shell) stops itself when its child
        stops, is never continued, and so never reaps its dead child: systemd-shutdown then
        waits 90 s for that zombie. Continuing the nsenter lets it reap and exit.
        """
        if not self._pidns:
            return
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if os.readlink(proc / "ns/pid_for_children") != self._pidns:
                    continue
                if os.readlink(proc / "ns/pid") == self._pidns:
                    continue  # a process of the container itself
            except OSError:
                continue
            if process_state(proc.name) == "T":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGCONT)

    def _kill(self):
        """SIGKILL the container's PID 1 (ending its PID namespace) and nspawn."""
        for pid in (self.pid, self.process.pid if self.process else None):
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


def nspawn_pids(name):
    """Return PIDs of systemd-nspawn processes booting machine *name* (from any process)."""
    wanted = f"--directory={RUN_DIR / name / 'merged'}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or _comm(proc.name) != "systemd-nspawn":
            continue
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if wanted in (proc / "cmdline").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
    return pids


def leader_pid(name):
    """Return the host PID of running machine *name*'s systemd (None if it is not running).

    Works from any process, e.g. ``python -m lab shell lb1`` next to a ``python -m lab up``.
    """
    for nspawn in nspawn_pids(name):
        leader = _systemd_child(nspawn)
        if leader:
            return leader
    return None


def cleanup_stale():
    """Remove what crashed runs left: nspawn processes, overlay mounts, cgroups, machine dirs.

    Only machines whose booting process is gone count as stale; a live lab's are kept.
    Returns a list of what it removed.
    """
    removed = []
    live = set()
    if RUN_DIR.is_dir():
        for directory in RUN_DIR.iterdir():
            if owner_alive(directory / "owner"):
                live.add(directory.name)
                continue
            for pid in nspawn_pids(directory.name):
                removed.append(f"systemd-nspawn pid {pid}")
                _terminate(pid)
            for point in _mounts_under(directory):
                removed.append(f"mount {point}")
                _unmount(Path(point))
            removed.append(f"dir {directory}")
            _remove_cgroups(directory.name)
            _remove_run_dir(directory)
    for base in _cgroup_hierarchies():
        group = base / CGROUP_GROUP
        for leftover in group.iterdir() if group.is_dir() else ():
            if leftover.is_dir() and leftover.name not in live:
                removed.append(f"cgroup {leftover}")
                _remove_cgroups(leftover.name)
    for line in removed:
        log(f"removed stale {line}")
    return removed


# --- cgroups ------------------------------------------------------------------------------------


def _cgroup_hierarchies():
    """Return the mount points of the cgroup2 and named-systemd v1 hierarchies on the host."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options.split(",")):
            found.append(Path(fields[4]))
    return found


def _make_cgroups(name):
    """Create ``lbpair/<name>`` in each hierarchy; return their ``cgroup.procs`` files."""
    procs = []
    for base in _cgroup_hierarchies():
        group = base / CGROUP_GROUP / name
        group.mkdir(parents=True, exist_ok=True)
        procs.append(group / "cgroup.procs")
    return procs


def _remove_cgroups(name):
    """Remove ``lbpair/<name>`` and its empty sub-cgroups (deepest first) in each hierarchy."""
    for base in _cgroup_hierarchies():
        group = base / CGROUP_GROUP / name
        if not group.is_dir():
            continue
        for sub in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            group.rmdir()
        with contextlib.suppress(OSError):
            group.parent.rmdir()  # lbpair/ itself, once the last machine is gone


# --- processes and mounts -----------------------------------------------------------------------


def _children(pid):
    """Return the PIDs of the direct children of *pid*."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _systemd_child(pid):
    """Return the child of *pid* whose command is ``systemd`` (None if there is none yet)."""
    for child in _children(pid):
        if _comm(child) == "systemd":
            return child
    return None


def _comm(pid):
    """Return the command name of *pid* ('' if it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _terminate(pid, timeout=15):
    """SIGTERM *pid* (nspawn powers its container off), SIGKILL it and its children if it stays."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    for victim in [*_children(pid), pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def _mounts_under(directory):
    """Return mount points under *directory*, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(f"{directory}/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _unmount(point):
    """Unmount *point* if mounted (lazily if it is busy)."""
    mounted = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    if str(point) not in mounted:
        return
    if run(["umount", str(point)], check=False).returncode != 0:
        run(["umount", "--lazy", str(point)])


def _remove_run_dir(directory):
    """Delete a machine's run dir (upper, work, log), refusing while something is mounted in it."""
    if directory.exists():
        remove_tree(directory)
    for parent in (RUN_DIR, RUN_ROOT):
        with contextlib.suppress(OSError):
            parent.rmdir()
