"""
State for HAProxy on an lbpair node.

.. code-block:: yaml

    HAProxy configuration is managed:
      lbpair_haproxy.configured
"""

__virtualname__ = "lbpair_haproxy"


def __virtual__():
    if "lbpair_deploy.configured_state" not in __salt__:
        return False, "the lbpair execution modules are not available"
    return __virtualname__


def configured(name):
    """
    Render haproxy.cfg from the ``lbpair`` pillar, check it with ``haproxy -c``,
    install it atomically and reload HAProxy; only when it changed. With
    ``test=True`` the unified diff is shown and nothing is written.

    name
        The state's name; free text.
    """
    return __salt__["lbpair_deploy.configured_state"](name, "haproxy", test=__opts__["test"])
