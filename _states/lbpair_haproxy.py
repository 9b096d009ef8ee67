"""
State for HAProxy on an lbpair node (``salt/lbpair/haproxy.sls`` uses it after
the package is installed):

.. code-block:: yaml

    HAProxy configuration is managed:
      lbpair_haproxy.configured:
        - require:
          - pkg: haproxy
"""

from saltext.lbpair.core import results
from saltext.lbpair.model import pillar
from saltext.lbpair.node import deploy, haproxy, haproxy_watch

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

    The TLS certificates of the pillar are written (0600) to files named by
    their SHA-256 in ``certs/lbpair`` beside haproxy.cfg before the check, and
    the ones no longer named are removed after the reload; ``changes`` and the
    diff name these files, never their content.

    name
        The state's name; free text.
    """
    return deploy.configured(name, haproxy, __salt__, __pillar__, __opts__, __context__)


def watched(name):
    """
    Let keepalived watch HAProxy without polling for a process: a systemd drop-in
    for HAProxy's unit sets keepalived's ``haproxy`` track file (in
    ``/var/lib/lbpair/track``) to 1 once HAProxy has stopped for good and to 0
    once it has started, never for a crash systemd heals; the probe keepalived
    runs asks HAProxy itself (a hung HAProxy never answers). Installs the
    scripts and units (``systemctl daemon-reload`` when a unit changed) and
    creates lbpair's missing track files with 0, never overwriting one. With
    ``test=True`` reports what would be installed.

    name
        The state's name; free text.
    """

    def apply():
        service = haproxy.daemon(__salt__["config.get"](haproxy.OPTIONS_KEY, {})).service
        model = pillar.minion_model(__pillar__, __opts__, __context__)
        return haproxy_watch.watched(model, service, test=__opts__["test"])

    return results.state(name, apply)
