"""
The ``lbpair`` pillar of a load-balancer pair: check it before anything is rendered.

The schema lives in :mod:`saltext.lbpair.model.pillar`; an error names the full pillar
path (``lbpair:services:foo:servers:foo1:address: ...``).

.. code-block:: yaml

    lbpair:
      nodes:
        lb1: {address: 192.0.2.11, priority: 101}
        lb2: {address: 192.0.2.12, priority: 100}
      services:
        foo:
          vip: 203.0.113.10
          port: 80
          servers:
            foo1: {address: 198.51.100.11, port: 80}
"""

from saltext.lbpair.model import pillar

__virtualname__ = "lbpair_config"


def __virtual__():
    return __virtualname__


def check(node=None):
    """
    Validate this minion's lbpair pillar for a node of the pair; return ``True``
    or raise an error that names the bad key.

    node
        Minion id of the node; defaults to this minion's id.

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_config.check
        salt lb1 lbpair_config.check node=lb2
    """
    pillar.minion_model(__pillar__, __opts__, __context__, node)
    return True
