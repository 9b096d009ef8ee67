"""
States for keepalived on an lbpair node: ``lbpair_keepalived.configured`` with a
name of your choice, e.g. ``keepalived configuration is managed`` (keepalived
is reloaded, never restarted), and ``lbpair_keepalived.handover_undone``.
"""

from saltext.lbpair.core import results
from saltext.lbpair.model import pillar
from saltext.lbpair.node import deploy, handover, keepalived_process

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
    return deploy.configured(name, keepalived_process, __salt__, __pillar__, __opts__, __context__)


def handover_undone(name):
    """
    Undo what a handover cut short (the minion killed midway) left behind, unless
    one is under way: the node kept in FAULT (keepalived's ``handover`` track file
    back to 0) and new connections to the VIPs held (lbpair's hold rules removed,
    whatever VIPs they name). ``changes`` lists what was undone under
    ``interrupted_handover``. With ``test=True`` only the track file is looked at,
    and nothing changes.

    name
        The state's name; free text.
    """

    def apply():
        model = pillar.minion_model(__pillar__, __opts__, __context__)
        return handover.undo_interrupted(model, test=__opts__["test"])

    return results.state(name, apply)
