"""Command line for the lab: ``python -m lab up|down|build-rootfs|shell NODE``.

::

    python -m lab build-rootfs            # build (or find) the cached Debian root, print its record
    python -m lab up                      # whole seed network; Enter or Ctrl-C tears it down
    python -m lab up --hosts lb1,lb2,foo1 --no-machines
    python -m lab shell lb1               # from another terminal: a shell on a running node
    python -m lab down                    # remove what a killed run left behind
    python -m lab within mgmt -- CMD...   # run CMD inside a fresh lbpair-mgmt namespace
    python -m lab demo [--keep]           # the seed scenario and its failover drill
"""

import argparse
import json
import os
import signal
import subprocess
import sys

from lab import machine, netns, rootfs, topology
from lab.util import require_root, sigterm_as_exit


def cmd_build_rootfs(args):
    """Build the cached root if needed (``--rebuild`` forces it) and print its build record."""
    path = rootfs.ensure(rebuild=args.rebuild)
    print(path)
    print(json.dumps(rootfs.info(path), indent=2))


def cmd_up(args):
    """Build the lab, print its hosts, wait for Enter (or a signal), then tear it down."""
    hosts = args.hosts.split(",") if args.hosts else None
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background
    with topology.Lab(hosts=hosts, machines=not args.no_machines) as lab:
        for host in lab.hosts.values():
            kind = "machine" if host.name in lab.machines else host.kind
            print(f"{host.name:8} {host.address:18} {host.netns:16} {kind}")
        print("lab is up: python -m lab shell NODE in another terminal", flush=True)
        try:
            if sys.stdin.isatty():
                print("press Enter (or Ctrl-C) to tear it down", flush=True)
                input()
            else:
                signal.pause()  # until SIGINT or SIGTERM
        except (KeyboardInterrupt, EOFError):
            pass
        print("tearing down", flush=True)


def cmd_down(args):
    """Remove stale machines, mounts, cgroups and namespaces of killed runs."""
    removed = machine.cleanup_stale()
    removed += [f"namespace {name}" for name in netns.cleanup_stale(unrecorded=args.all)]
    print("\n".join(removed) if removed else "nothing to remove")


def cmd_shell(args):
    """Replace this process with a shell (or *command*) on a node of a running lab."""
    command = args.command or ["/bin/bash", "-l"]
    pid = machine.leader_pid(args.node)
    if pid:
        argv = ["nsenter", "-t", str(pid), "-a", *command]
        env = {**machine.CONTAINER_ENV, "TERM": os.environ.get("TERM", "dumb")}
        os.execvpe("nsenter", argv, env)
    name = f"{netns.PREFIX}{args.node}"
    if not netns.exists(name):
        sys.exit(f"no running machine or namespace called {args.node}")
    os.execvp("ip", ["ip", "netns", "exec", name, *command])


def cmd_within(args):
    """Run a command inside a new namespace ``lbpair-<host>``, then delete it; its exit code.

    The integration tests run this way inside ``lbpair-mgmt``: the salt-master they start,
    and salt-factories' own listeners, share that namespace with the lab's mgmt host.
    """
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    name = f"{netns.PREFIX}{args.host}"
    netns.add(name)
    try:
        # nsenter, not `ip netns exec`: that remounts /sys, which hides the cgroup
        # hierarchy systemd-nspawn needs to boot the lab's machines.
        entered = ["nsenter", f"--net={netns.path(name)}", *command]
        return _wait_passing_signals_on(subprocess.Popen(entered))
    finally:
        netns.delete(name)


def _wait_passing_signals_on(child):
    """Wait for *child*; it tears down its own work, so deleting the namespace waits for it.

    Ctrl-C reaches the child from the terminal by itself; a SIGTERM to us is passed on.
    """
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue
        except SystemExit:
            child.terminate()


def cmd_demo(args):
    """Run the demo inside the lab's mgmt namespace (re-running itself there if needed)."""
    if not netns.is_current(f"{netns.PREFIX}mgmt"):
        again = [sys.executable, "-m", "lab", "demo", *(["--keep"] if args.keep else [])]
        return cmd_within(argparse.Namespace(host="mgmt", command=again))
    from lab import demo  # noqa: PLC0415 (imports the salt-master helpers only when needed)

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background

    try:
        demo.run(keep=args.keep)
    except demo.DemoFailed as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted; everything it started is removed", file=sys.stderr)
        return 130
    return 0


#: each sub-command: its name, help, function and arguments (``(names, options)`` for ``add_argument``)
COMMANDS = [
    ("up", "build the lab and keep it up until Enter or Ctrl-C", cmd_up, [
        (["--hosts"], {"help": "comma-separated seed hosts (default: all)"}),
        (["--no-machines"], {"action": "store_true", "help": "plain namespaces for lb1/lb2"}),
    ]),
    ("down", "remove leftovers of a killed run", cmd_down, [
        (["--all"], {"action": "store_true", "help": "also lbpair-* namespaces that other tools made (even if in use)"}),
    ]),
    ("build-rootfs", "build the cached Debian root for machines", cmd_build_rootfs, [
        (["--rebuild"], {"action": "store_true", "help": "build even if cached"}),
    ]),
    ("shell", "a shell on a node of a running lab", cmd_shell, [
        (["node"], {"help": "host name, e.g. lb1 or client"}),
        (["command"], {"nargs": argparse.REMAINDER, "help": "command instead of a shell"}),
    ]),
    ("demo", "the seed scenario end to end, with its failover drill", cmd_demo, [
        (["--keep"], {"action": "store_true", "help": "keep the lab up until Enter or Ctrl-C"}),
    ]),
    ("within", "run a command inside a new lab host namespace", cmd_within, [
        (["host"], {"help": "host name, e.g. mgmt"}),
        (["command"], {"nargs": argparse.REMAINDER, "help": "-- command and arguments"}),
    ]),
]  # fmt: skip


def parser():
    """Return the argument parser."""
    top = argparse.ArgumentParser(prog="python -m lab", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="action", required=True)
    for name, help_text, function, arguments in COMMANDS:
        command = sub.add_parser(name, help=help_text)
        for names, options in arguments:
            command.add_argument(*names, **options)
        command.set_defaults(func=function)
    return top


def main(argv=None):
    """Run the CLI."""
    args = parser().parse_args(argv)
    require_root()
    with sigterm_as_exit():
        return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
