"""
lbpair's logic as one plain Python package: no Salt dunders, importable on its own.

Salt's loader modules (``_modules``, ``_states``, ``_beacons``, ``_runners``) are thin
adapters over it. It ships two ways, both imported as ``lbpair_lib``:

- under ``_utils/`` of the state tree: ``saltutil.sync_all`` copies it into the
  minion's (``salt-run saltutil.sync_all``: the master's) ``extmods/utils``,
  which Salt puts on ``sys.path``;
- with ``pip install saltext-lbpair``, as a top-level package.

Modules, one concern each: ``schema`` (typed validators), ``pillar`` (the
``lbpair`` pillar), ``haproxy`` and ``keepalived`` (rendering, local daemon
access), ``stats`` (HAProxy's stats socket), ``vrrp_dbus`` (keepalived's D-Bus
interface), ``firewall``, ``deploy`` (check, install, reload, roll back),
``store`` (durable JSON lines), ``journal``, ``history``, ``beacon``,
``reactions_config``, ``reactions``, ``notify``, ``dns_update``; and the small
shared pieces ``errors``, ``times``, ``command`` (running the daemons' tools) and
``results`` (Salt's state return).
"""

__version__ = "0.2.0"
