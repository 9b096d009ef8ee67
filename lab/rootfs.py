"""Build and cache the Debian 12 root that every lab Machine boots from.

The root lives at ``/var/cache/lbpair/rootfs-<key>``, where ``<key>`` is a short hash of the
package lists and of this module's build recipe: changing either builds a new root. Machines
never write to it; each one mounts it read-only as the lower layer of its own overlayfs.

A build runs debootstrap into ``/var/cache/lbpair/.build-*`` and renames the result into place
only when every step succeeded; a file lock keeps two runs from building at once. Commands inside
the new root run through ``unshare --mount`` so that the /proc and /dev mounts they need vanish
with the process, even when the build is killed. Usage::

    from lab import rootfs
    path = rootfs.ensure()          # builds on first use (a few minutes), then returns at once
    print(rootfs.info(path))        # {"key": ..., "build_seconds": ..., ...}

or ``python -m lab build-rootfs``.
"""

import fcntl
import functools
import hashlib
import inspect
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from lab.util import log, remove_tree, run, sigterm_as_exit

CACHE_DIR = Path("/var/cache/lbpair")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
SALT_VERSION = "3008.4"

#: Installed by debootstrap itself: what systemd needs to boot as PID 1 with a system bus.
BOOT_PACKAGES = ("systemd", "systemd-sysv", "dbus")
#: Installed afterwards with apt-get, with service start-up blocked by policy-rc.d.
PACKAGES = (
    "iproute2",
    "iputils-ping",
    "procps",
    "haproxy",
    "keepalived",
    "iptables",
    "nftables",
    "python3",
    "python3-venv",
    "ca-certificates",
    "curl",
)
#: Needed only to build salt's C dependencies (timelib has no wheel); purged after pip.
BUILD_PACKAGES = ("gcc", "libc6-dev", "python3-dev")
#: Installed with pip into the venv at SALT_VENV inside the root.
PIP_PACKAGES = (f"salt=={SALT_VERSION}", "dbus-next", "dnspython")
SALT_VENV = "/opt/saltenv"

MINION_UNIT = """\
[Unit]
Description=The Salt Minion (lbpair lab, pip install in /opt/saltenv)
After=network.target

[Service]
Type=simple
ExecStart=/usr/bin/salt-minion
KillMode=process
Restart=on-failure
RestartSec=2
# Without a reachable master the minion takes 5-7 s to act on SIGTERM; a lab machine holds
# nothing worth waiting for, so stop (and poweroff) is bounded here.
TimeoutStopSec=5

[Install]
WantedBy=multi-user.target
"""

INFO_FILE = "etc/lbpair-rootfs.json"
CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LC_ALL": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
#: Prefix that runs a command in its own mount namespace: its mounts die with it.
PRIVATE_MOUNTS = ("unshare", "--mount", "--propagation", "private")
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@functools.cache
def cache_key():
    """Return the 12-hex-digit key of the current recipe (packages, salt version, build steps).

    Computed once per process, so editing this file during a build cannot change it midway.
    """
    recipe = [SUITE, MIRROR, SECURITY_MIRROR, BOOT_PACKAGES, PACKAGES, PIP_PACKAGES, MINION_UNIT]
    recipe += [inspect.getsource(step) for step in _STEPS]
    return hashlib.sha256(repr(recipe).encode()).hexdigest()[:12]


def path():
    """Return where the root for the current recipe lives (it may not be built yet)."""
    return CACHE_DIR / f"rootfs-{cache_key()}"


def info(root=None):
    """Return the build record (key, packages, build_seconds, built_at) stored in a built root."""
    root = Path(root or path())
    return json.loads((root / INFO_FILE).read_text())


def ensure(rebuild=False):
    """Return the path of the cached root, building it first when it is missing (or *rebuild*).

    Holds an exclusive lock on ``CACHE_DIR/.lock`` while checking and building, so a second run
    waits for the first one's build instead of starting its own.
    """
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    target = path()
    with open(CACHE_DIR / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another run is building the rootfs; waiting for {CACHE_DIR / '.lock'}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if rebuild and in_use(target):
            raise RuntimeError(f"{target} is in use by running machines; stop them first")
        _remove_unfinished()
        if rebuild or not target.exists():
            with sigterm_as_exit():
                build(target)
    return target


def in_use(root):
    """Tell whether an overlay mount (a running Machine) uses *root* as its lower layer."""
    return f"lowerdir={root}," in Path("/proc/self/mountinfo").read_text()


def build(target):
    """Build the root at *target* from scratch: debootstrap, packages, salt venv, units.

    Works in a temporary directory next to *target* and renames it into place at the end; any
    failure (or Ctrl-C) removes the temporary directory. Reports progress on stderr.
    """
    target = Path(target)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    log(f"building rootfs {target.name} in {work} (a cold build takes a few minutes)")
    try:
        for step in _STEPS:
            step_started = time.monotonic()
            log(f"rootfs: {step.__doc__.splitlines()[0]}")
            step(work)
            log(f"rootfs: ... done in {time.monotonic() - step_started:.0f}s")
        seconds = round(time.monotonic() - started, 1)
        _write_info(work, seconds)
        work.chmod(0o755)
        _replace(target, work)
    except BaseException:
        log(f"rootfs build failed; removing {work}")
        remove_tree(work)
        raise
    log(f"rootfs {target} built in {seconds:.0f}s")
    prune(keep=target)
    return target


def prune(keep=None):
    """Remove cached roots other than *keep* (default: the current recipe's) that no mount uses."""
    keep = Path(keep or path())
    for old in CACHE_DIR.glob("rootfs-*"):
        if old != keep and not in_use(old):
            log(f"removing outdated rootfs {old}")
            remove_tree(old)


def chroot(root, argv, check=True, timeout=None, env=None):
    """Run *argv* chrooted in *root* with a clean environment (plus *env*), /proc and /dev mounted.

    The mounts are made in a private mount namespace (``unshare --mount``), so they never show
    on the host and disappear when the command ends, however it ends.
    """
    script = 'mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && exec chroot "$0" "$@"'
    cmd = [*PRIVATE_MOUNTS, "sh", "-c", script, str(root), *argv]
    return run(cmd, check=check, timeout=timeout, env={**CHROOT_ENV, **(env or {})})


# --- build steps, in order; their source is part of the cache key -------------------------------


def _debootstrap(root):
    """debootstrap a minbase bookworm with systemd, systemd-sysv and dbus"""
    run(
        [
            *PRIVATE_MOUNTS,
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BOOT_PACKAGES)}",
            SUITE,
            str(root),
            MIRROR,
        ],
        timeout=1800,
        env={"PATH": CHROOT_ENV["PATH"], "LC_ALL": "C.UTF-8"},
    )


def _block_service_starts(root):
    """block service starts in the chroot with policy-rc.d (exit 101)"""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# lbpair rootfs build: no services in the chroot\nexit 101\n")
    policy.chmod(0o755)


def _install_packages(root):
    """apt-get install the lab packages (haproxy, keepalived, python3-venv, ...) and a compiler"""
    sources = (
        f"deb {MIRROR} {SUITE} main\n"
        f"deb {MIRROR} {SUITE}-updates main\n"
        f"deb {SECURITY_MIRROR} {SUITE}-security main\n"
    )
    (root / "etc/apt/sources.list").write_text(sources)
    chroot(root, ["apt-get", "update", "-q"], timeout=900)
    install = ["apt-get", "install", "-q", "-y", "--no-install-recommends"]
    chroot(root, [*install, *PACKAGES], timeout=1800)
    chroot(root, [*install, *BUILD_PACKAGES], timeout=1800)


def _install_salt(root):
    """create the venv /opt/saltenv, pip install salt, dbus-next and dnspython, purge compilers"""
    chroot(root, ["python3", "-m", "venv", SALT_VENV], timeout=300)
    ca_copy = root / "tmp/lbpair-build-ca.pem"
    shutil.copyfile(HOST_CA_BUNDLE, ca_copy)  # the host's bundle may hold an egress proxy's CA
    try:
        pip = [f"{SALT_VENV}/bin/pip", "install", "-q", "--no-cache-dir", *PIP_PACKAGES]
        chroot(root, pip, timeout=1800, env={"PIP_CERT": "/tmp/lbpair-build-ca.pem"})
    finally:
        ca_copy.unlink()
    purge = ["apt-get", "purge", "-q", "-y", "--auto-remove", *BUILD_PACKAGES]
    chroot(root, purge, timeout=600)
    chroot(root, ["apt-get", "clean"])
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()
    for tool in ("salt-minion", "salt-call"):
        link = root / "usr/bin" / tool
        link.unlink(missing_ok=True)
        link.symlink_to(f"{SALT_VENV}/bin/{tool}")
    (root / "etc/salt/minion.d").mkdir(parents=True, exist_ok=True)


def _install_minion_unit(root):
    """install and enable salt-minion.service"""
    (root / "etc/systemd/system/salt-minion.service").write_text(MINION_UNIT)
    chroot(root, ["systemctl", "enable", "salt-minion.service"])


def _configure_boot(root):
    """password-less root console, empty machine-id, default hostname, unblock services"""
    chroot(root, ["passwd", "--delete", "root"])
    (root / "etc/machine-id").write_text("")  # empty: systemd makes a new id on every boot
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("lbpair-node\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n")
    (root / "usr/sbin/policy-rc.d").unlink()


_STEPS = (
    _debootstrap,
    _block_service_starts,
    _install_packages,
    _install_salt,
    _install_minion_unit,
    _configure_boot,
)


def _remove_unfinished():
    """Remove build and swap directories of killed builds (call with the build lock held)."""
    for leftover in [*CACHE_DIR.glob(".build-*"), *CACHE_DIR.glob(".old-*")]:
        log(f"removing unfinished rootfs build {leftover}")
        remove_tree(leftover)


def _replace(target, work):
    """Rename the finished build *work* to *target*, replacing a previous build there."""
    if not target.exists():
        os.rename(work, target)
        return
    old = target.with_name(f".old-{target.name}")
    remove_tree(old)
    os.rename(target, old)
    os.rename(work, target)
    remove_tree(old)


def _write_info(root, seconds):
    """Store the build record read back by :func:`info`."""
    record = {
        "key": cache_key(),
        "suite": SUITE,
        "packages": [*BOOT_PACKAGES, *PACKAGES],
        "pip_packages": list(PIP_PACKAGES),
        "build_seconds": seconds,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (root / INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
