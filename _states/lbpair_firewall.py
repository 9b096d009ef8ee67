"""
State for the firewall rule that lets the nodes of an lbpair pair exchange VRRP.

.. code-block:: yaml

    VRRP from the other node is accepted:
      lbpair_firewall.vrrp_allowed
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "lbpair_firewall"


def __virtual__():
    if "lbpair_firewall.vrrp_allow" not in __salt__:
        return False, "the lbpair execution modules are not available"
    return __virtualname__


def vrrp_allowed(name):
    """
    Accept VRRP (IP protocol 112) from the other nodes of the pair, and only
    from them; remove lbpair's rules for nodes that left. Backend and chain
    come from ``lbpair:firewall`` in the pillar.

    name
        The state's name; free text.
    """
    ret = {"name": name, "result": False, "comment": "", "changes": {}}
    try:
        plan = __salt__["lbpair_firewall.vrrp_allow"](test=__opts__["test"])
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["comment"] = str(exc)
        return ret
    changes = {key: rules for key, rules in plan.items() if rules}
    if not changes:
        ret.update(result=True, comment="VRRP rules are in place")
    elif __opts__["test"]:
        ret.update(result=None, comment="VRRP rules would be changed", changes=changes)
    else:
        ret.update(result=True, comment="VRRP rules changed", changes=changes)
    return ret
