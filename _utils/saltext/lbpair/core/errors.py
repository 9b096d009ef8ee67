"""
lbpair's exceptions.

Where Salt is installed they are Salt's own exception types, so that a loader
module can let them through and Salt reports them as it reports its own
(``CommandExecutionError``: the message, no traceback). Without Salt (the
library's unit tests, tools) they are plain exceptions.
"""

try:
    from salt.exceptions import CommandExecutionError as _Failure
    from salt.exceptions import SaltInvocationError as _BadInput
except ImportError:  # pragma: no cover - the library used without Salt
    _Failure = _BadInput = Exception


class LbpairError(_Failure):
    """Something lbpair was asked to do could not be done; the message says why."""


def printable(text):
    """``text`` with each character that would break a line or drive a terminal escaped (``\\n``, ``\\x1b``)."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


class InvalidValue(_BadInput):
    """
    An input value is invalid; ``path`` names it (``lbpair:services:foo:port``). The
    message shows the path escaped: a hostile key (a service named ``"x\\nCRITICAL ..."``)
    cannot add lines to a state's comment or a log.
    """

    def __init__(self, path, message):
        self.path = path
        super().__init__(f"{printable(str(path))}: {message}")
