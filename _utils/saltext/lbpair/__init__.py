"""
lbpair's logic as one plain Python package: no Salt dunders, importable on its own.

Salt's loader modules (``_modules``, ``_states``, ``_beacons``, ``_runners``) are thin
adapters over it. It ships two ways, both imported as ``saltext.lbpair``:

- under ``_utils/`` of the state tree: ``saltutil.sync_all`` copies it into the
  minion's (``salt-run saltutil.sync_all``: the master's) ``extmods/utils``,
  which Salt puts on ``sys.path`` (``saltext`` is a namespace package: no ``__init__``);
- with ``pip install saltext-lbpair``, in Salt's extension namespace ``saltext``, with the
  loader modules as its sub-packages (``modules``, ``states``, ``beacons``, ``runners``:
  Salt's loader finds them through the ``salt.loader`` entry point) and the state tree
  (``state_tree``).

Sub-packages, one per side of the pair, each module one concern:

- ``core``: what every side uses (errors, the store, times, commands, state returns);
- ``model``: the ``lbpair`` pillar (schema, services, TLS, the service sandbox);
- ``node``: a load balancer (HAProxy, keepalived, deploy, firewall, beacon, journal);
- ``master``: the Salt master (reactions, planned moves, history, notify, DNS).

``master`` and ``node`` never import each other; ``model`` and ``core`` import neither
(the import-linter contract in ``.importlinter``, run by ``scripts/test``).
"""

__version__ = "0.2.0"
