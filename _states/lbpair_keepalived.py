"""
State for keepalived on an lbpair node: ``lbpair_keepalived.configured`` with a
name of your choice, e.g. ``keepalived configuration is managed``. keepalived
is reloaded, never restarted.
"""

from lbpair_lib import deploy, keepalived

__virtualname__ = "lbpair_keepalived"


def __virtual__():
    return __virtualname__


def configured(name):
    """
    Render keepalived.conf from the ``lbpair`` pillar, check it with
    ``keepalived -t``, install it atomically and reload keepalived (SIGHUP,
    never a restart); only when it changed. With ``test=True`` the same check
    runs on a scratch copy: ``result`` None with the unified diff if keepalived
    accepts it, False with its rejection if not; nothing is installed or
    reloaded. A rejection names the pillar key behind each line keepalived
    complains about.

    name
        The state's name; free text.
    """
    return deploy.configured(name, keepalived, __salt__, __pillar__, __opts__, __context__)
