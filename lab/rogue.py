"""A rogue VRRP router: real keepalived in a namespace of its own on a segment, claiming a pair's VRID.

It attacks VRRP only. It sends the pair's VRID with a higher priority from its own address; the
virtual IPs it takes as MASTER sit on a link of its own (``vips0``, one end of a veth pair inside
its namespace) and ``arp_ignore`` keeps it from answering ARP for them on ``eth0``. So if the pair
goes BACKUP, that is the VRRP attack working, not an ARP hijack (no VRRP firewall can stop that).
Example::

    from lab import netns, rogue

    with rogue.on_segment("lbpair-sw", "br0", "lbpair-rogue", "192.0.2.66/24"):
        with rogue.RogueRouter("lbpair-rogue", workdir, vrid=51, priority=254, vips=["203.0.113.10"]) as router:
            router.is_master()   # True once it sent its adverts and heard no higher priority
"""

import contextlib
import subprocess

from lab import netns
from lab.util import stop_process

VIP_LINK = "vips0"


def config(vrid, priority, vips, interface="eth0", vip_link=VIP_LINK, unicast_peers=()):
    """
    keepalived.conf of the rogue: one instance with the pair's VRID, its VIPs on *vip_link*;
    adverts to the multicast group, or to each of *unicast_peers*.
    """
    addresses = "".join(f"        {vip}/32 dev {vip_link}\n" for vip in vips)
    peers = "".join(f"        {peer}\n" for peer in unicast_peers)
    return (
        "global_defs {\n    router_id rogue\n}\n"
        "vrrp_instance rogue {\n"
        f"    state MASTER\n    interface {interface}\n    virtual_router_id {vrid}\n"
        f"    priority {priority}\n    advert_int 1\n"
        + (f"    unicast_peer {{\n{peers}    }}\n" if peers else "")
        + f"    virtual_ipaddress {{\n{addresses}    }}\n"
        "}\n"
    )


@contextlib.contextmanager
def on_segment(switch, bridge, name, address):
    """A host on the segment: namespace *name* with ``eth0`` (*address*) on *bridge* of namespace *switch*; deleted on exit."""
    netns.add(name)
    try:
        port = f"p-{name.removeprefix(netns.PREFIX)}"[:15]
        netns.veth(switch, port, name, "eth0")
        netns.attach(switch, port, bridge)
        netns.add_address(name, "eth0", address)
        yield name
    finally:
        netns.delete(name)


class RogueRouter:
    """keepalived in *namespace* (which has an ``eth0`` on the pair's segment) claiming *vrid* (see :func:`config`)."""

    def __init__(self, namespace, workdir, vrid, priority, vips, unicast_peers=()):
        self.namespace = namespace
        self.workdir = workdir
        self.vrid, self.priority, self.vips = vrid, priority, list(vips)
        self.unicast_peers = list(unicast_peers)
        self.process = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        netns.ip(self.namespace, "link", "add", VIP_LINK, "type", "veth", "peer", "name", "vips1")
        for link in (VIP_LINK, "vips1"):
            netns.ip(self.namespace, "link", "set", link, "up")
        netns.run(self.namespace, ["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1"])
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "keepalived.conf"
        conf.write_text(config(self.vrid, self.priority, self.vips, unicast_peers=self.unicast_peers))
        pids = [f"--{kind}={self.workdir / kind}.pid" for kind in ("pid", "vrrp_pid", "checkers_pid")]
        command = ["keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file", str(conf), *pids]
        with open(self.workdir / "keepalived.log", "w", encoding="utf-8") as log:
            self.process = netns.popen(self.namespace, command, stdout=log, stderr=subprocess.STDOUT)

    def is_master(self):
        """Whether the rogue holds every VIP (on its own link): it is MASTER."""
        addresses = netns.ip(self.namespace, "-4", "-o", "addr", "show", "dev", VIP_LINK).stdout
        return all(f" {vip}/32 " in addresses for vip in self.vips)

    def log(self):
        """What the rogue's keepalived said so far."""
        return (self.workdir / "keepalived.log").read_text(encoding="utf-8", errors="replace")

    def stop(self):
        if self.process is not None:
            stop_process(self.process)
            self.process = None
