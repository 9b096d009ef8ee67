"""
State for keepalived on an lbpair node.

.. code-block:: yaml

    keepalived configuration is managed:
      lbpair_keepalived.configured
"""

__virtualname__ = "lbpair_keepalived"


def __virtual__():
    if "lbpair_deploy.configured_state" not in __salt__:
        return False, "the lbpair execution modules are not available"
    return __virtualname__


def configured(name):
    """
    Render keepalived.conf from the ``lbpair`` pillar, check it with
    ``keepalived -t``, install it atomically and reload keepalived (SIGHUP,
    never a restart); only when it changed. With ``test=True`` the unified diff
    is shown and nothing is written.

    name
        The state's name; free text.
    """
    return __salt__["lbpair_deploy.configured_state"](name, "keepalived", test=__opts__["test"])
