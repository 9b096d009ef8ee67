"""
State for HAProxy on an lbpair node.

.. code-block:: yaml

    HAProxy configuration is managed:
      lbpair_haproxy.configured
"""

from lbpair_lib import deploy, haproxy, pillar, results

__virtualname__ = "lbpair_haproxy"


def __virtual__():
    return __virtualname__


def configured(name):
    """
    Render haproxy.cfg from the ``lbpair`` pillar, check it with ``haproxy -c``,
    install it atomically and reload HAProxy; only when it changed. With
    ``test=True`` the unified diff is shown (passwords masked) and nothing is written.

    name
        The state's name; free text.
    """

    def configure():
        daemon = haproxy.daemon(__salt__["config.get"]("lbpair_haproxy", {}))
        return deploy.configure(daemon, pillar.minion_model(__pillar__, __opts__, __context__), __salt__, __opts__["test"])

    return results.state(name, configure)
