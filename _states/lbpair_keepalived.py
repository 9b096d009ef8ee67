"""
State for keepalived on an lbpair node.

.. code-block:: yaml

    keepalived configuration is managed:
      lbpair_keepalived.configured
"""

from lbpair_lib import deploy, keepalived, pillar, results

__virtualname__ = "lbpair_keepalived"


def __virtual__():
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

    def configure():
        daemon = keepalived.daemon(__salt__["config.get"]("lbpair_keepalived", {}))
        return deploy.configure(daemon, pillar.minion_model(__pillar__, __opts__, __context__), __salt__, __opts__["test"])

    return results.state(name, configure)
