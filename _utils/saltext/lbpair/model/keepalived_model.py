"""
The pair's keepalived instances as the pillar model defines them: their names, families and
virtual IPs, and keepalived's state names. Both sides use them: the node renders and reads
keepalived with them, the master checks DNS records and reads node answers with them.

Each VRRP instance of the pillar is a ``vrrp_instance lbpair_<vrid>`` holding the IPv4 virtual
IPs of its services; its IPv6 virtual IPs are in a sibling ``lbpair_<vrid>_6``.
"""

import collections
import enum

from saltext.lbpair.model import pillar, services


class VrrpState(enum.StrEnum):
    """The states keepalived reports for a VRRP instance (its D-Bus and notify names); equal to its name as text."""

    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"
    DELETED = "DELETED"
    STOP = "STOP"


#: keepalived's VRRP states by number, as its JSON dump and D-Bus interface give them (plain text)
STATE_NAMES = {
    number: state.value
    for number, state in ((0, VrrpState.INIT), (1, VrrpState.BACKUP), (2, VrrpState.MASTER), (3, VrrpState.FAULT),
                          (97, VrrpState.DELETED), (98, VrrpState.STOP))
}  # fmt: skip
#: the name of an instance's IPv6 sibling: ``lbpair_<vrid>_6``
IPV6_SUFFIX = "_6"

#: one ``vrrp_instance``: its keepalived ``name``, the pillar ``instance`` it belongs to, its IP ``family`` and ``vips``
VrrpInstance = collections.namedtuple("VrrpInstance", "name instance family vips")


def vrrp_instances(model):
    """The pair's keepalived instances: for each instance of the pillar, one per IP family of its VIPs."""
    found = [
        VrrpInstance(instance_name(model, instance, family), instance, family, vips)
        for instance in model["vrrp"]["instances"]
        for family in (4, 6)
        if (vips := pillar.vips(model, instance, family))
    ]
    # a pair without services keeps its one instance, as before there were instances
    return found or [VrrpInstance(instance_name(model), services.DEFAULT_INSTANCE, 4, [])]


def instance_vips(model):
    """``{instance: [vip, ...]}``: the virtual IPs of each of the pair's keepalived instances (``lbpair_51``, ``lbpair_51_6``)."""
    return {vrrp.name: vrrp.vips for vrrp in vrrp_instances(model)}


def state_name(state):
    """The name of a keepalived state number (``2`` -> ``MASTER``); unknown numbers as text."""
    return STATE_NAMES.get(state, str(state))


def instance_name(model, instance=services.DEFAULT_INSTANCE, family=4):
    """The keepalived name of a pillar instance's ``family`` (4 or 6) instance: ``lbpair_51``, ``lbpair_52_6``."""
    vrid = model["vrrp"]["instances"][instance]["virtual_router_id"]
    return f"lbpair_{vrid}{IPV6_SUFFIX if family == 6 else ''}"
