"""lbpair lab: network namespaces on a bridge and systemd-nspawn load-balancer machines.

Shared by the integration tests, the demo and the benchmarks::

    from lab.topology import Lab

    with Lab() as lab:                       # builds the rootfs on first use
        print(lab.exec("lb1", ["curl", "-s", "http://198.51.100.11/"]).stdout)  # foo1

Modules: :mod:`lab.netns` (namespaces, veths, ``enter``), :mod:`lab.rootfs` (cached Debian
root), :mod:`lab.machine` (nspawn machines), :mod:`lab.topology` (the seed network and ``Lab``).
Everything needs root; see ``python -m lab --help``.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "_utils"))  # saltext.lbpair, as the synced _utils folder gives it
