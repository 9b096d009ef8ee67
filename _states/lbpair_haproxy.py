"""
State for HAProxy on an lbpair node (``salt/lbpair/haproxy.sls`` uses it after
the package is installed):

.. code-block:: yaml

    HAProxy configuration is managed:
      lbpair_haproxy.configured:
        - require:
          - pkg: haproxy
"""

from lbpair_lib import deploy, haproxy

__virtualname__ = "lbpair_haproxy"


def __virtual__():
    return __virtualname__


def configured(name):
    """
    Render haproxy.cfg from the ``lbpair`` pillar, check it with ``haproxy -c``,
    install it atomically and reload HAProxy; only when it changed. With
    ``test=True`` the same check runs on a scratch copy: ``result`` None with the
    unified diff (passwords masked) if HAProxy accepts it, False with its rejection
    if not; nothing is installed or reloaded. A rejection names the pillar key
    behind each line HAProxy complains about.

    name
        The state's name; free text.
    """
    return deploy.configured(name, haproxy, __salt__, __pillar__, __opts__, __context__)
