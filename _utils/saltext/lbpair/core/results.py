"""Salt's return conventions for lbpair's states, kept in one place."""

from saltext.lbpair.core.errors import InvalidValue, LbpairError


def state(name, apply):
    """
    Run ``apply()`` (which returns ``result``, ``comment`` and ``changes``) as a
    state: lbpair's errors become ``result: False`` with their message.
    """
    ret = {"name": name, "result": False, "comment": "", "changes": {}}
    try:
        ret.update(apply())
    except (LbpairError, InvalidValue) as exc:
        ret["comment"] = str(exc)
    return ret
