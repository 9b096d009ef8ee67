"""
HAProxy on an lbpair node: its configuration rendered from the ``lbpair`` pillar,
checked with ``haproxy -c``, reloaded without dropping connections; servers
queried and drained through the stats socket.

Minion configuration, all optional: ``lbpair_haproxy: {config_file:
/etc/haproxy/haproxy.cfg, service: haproxy, binary: haproxy}``. The state ``lbpair_haproxy.configured`` installs the configuration
and the TLS certificates of the pillar (in ``certs/lbpair`` beside haproxy.cfg).
"""

from saltext.lbpair.model import pillar
from saltext.lbpair.node import deploy, haproxy, ocsp, stats, tls_files

__virtualname__ = "lbpair_haproxy"


def __virtual__():
    return __virtualname__


def _daemon():
    return haproxy.daemon(__salt__["config.get"]("lbpair_haproxy", {}))


def _model(node=None, lbpair=None):
    return pillar.minion_model(__pillar__, __opts__, __context__, node, lbpair)


def render(node=None, pillar=None):
    """
    The haproxy.cfg the pillar gives a node (``node``, this minion by default),
    passwords masked; ``pillar`` renders that ``lbpair`` mapping instead.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.render
    """
    return deploy.redact(deploy.text_of(_daemon().render(_model(node, pillar))))


def validate():
    """
    Render the configuration from the pillar into a scratch file and check it with
    the real ``haproxy -c``; returns HAProxy's messages, or raises them, each
    message about a line led by the pillar key behind it
    (``lbpair:services:foo:options:1 (line 49: "..."): [ALERT] ...``). Nothing
    live is touched.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.validate
    """
    return deploy.check_model(_daemon(), _model())


def reload():
    """
    Reload HAProxy through the service manager (seamless in master-worker mode);
    start it if it is not running.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.reload
    """
    return deploy.reload(_daemon(), __salt__)


def servers(service=None):
    """
    The servers of every service (or of one) with their runtime state, from the
    stats socket.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.servers
        salt lb1 lbpair_haproxy.servers foo
    """
    return stats.servers(_model()["haproxy"]["stats_socket"], service)


def set_server(service, server, state):
    """
    Set a server's administrative state: ``ready``, ``drain`` or ``maint``.
    Returns its runtime state afterwards.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.set_server foo foo1 drain
        salt lb1 lbpair_haproxy.set_server foo foo1 ready
    """
    return stats.set_server(_model()["haproxy"]["stats_socket"], service, server, state)


def certificates(warn_days=30):
    """
    The TLS certificates of every service: per service and certificate, its host
    names, ``not_after``, ``days_left`` and ``warning`` (it expires within
    ``warn_days`` days); ``source`` is ``pillar`` or the file on this node it was
    read from. A file that cannot be read or holds no valid certificate has an
    ``error`` instead. Private keys are never read into the answer.

    ``ocsp`` is its stapling: ``{responder, this_update, next_update, stale}``
    (``missing`` without a response), or ``{none: why}`` (no responder named; no
    issuer in the bundle, then with ``responder`` and ``stale``).

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.certificates
        salt lb1 lbpair_haproxy.certificates warn_days=14
    """
    model = _model()
    found = tls_files.report(model, warn_days)
    for service, rows in ocsp.report(model, _daemon().side_files.directory).items():
        for name, stapling in rows.items():
            found[service][name]["ocsp"] = stapling
    return found


def ocsp_refresh():
    """
    Refresh the OCSP responses HAProxy staples: for each certificate whose leaf
    names an OCSP responder and whose bundle holds its issuer, ask the responder
    (plain HTTP only), check the answer (signed by the issuer or a responder it
    delegated, about this certificate, good, current), write it beside the
    certificate file as ``<crt>.ocsp`` (0600) and give it to the running HAProxy
    through the stats socket, without a reload. Anything else keeps the previous
    response. Returns per service and certificate ``result``: ``stapled`` (with
    ``this_update``, ``next_update``, ``pushed``: HAProxy's answer), ``refused``
    (``reason``, ``kept``: what the previous file holds) or ``none`` (``reason``).
    The ``lbpair.haproxy`` SLS schedules it hourly.

    CLI Example:

    .. code-block:: bash

        salt lb1 lbpair_haproxy.ocsp_refresh
    """
    model = _model()
    return ocsp.refresh(model, _daemon().side_files.directory, model["haproxy"]["stats_socket"])
