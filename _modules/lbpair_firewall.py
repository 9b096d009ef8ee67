"""
The firewall rules that let the nodes of an lbpair pair exchange VRRP (IP
protocol 112): accepted from the other nodes' addresses, dropped from anyone
else on the pair's interface (and its sender recorded if it carries one of the
pair's VRIDs); iptables or
nftables, as ``lbpair:firewall`` in the pillar says (see
:mod:`saltext.lbpair.node.firewall`). HAProxy's peers port is kept to the pair's nodes
(``peers_rules``), its Prometheus exporter to the networks ``lbpair:haproxy:prometheus:allow``
names (``prometheus_rules``).

.. code-block:: yaml

    lbpair:
      firewall:
        backend: nftables        # or iptables
        nft_table: inet filter
        nft_chain: input
"""

from saltext.lbpair.model import pillar
from saltext.lbpair.node import firewall
from saltext.lbpair.node.firewall import exporter, peers

__virtualname__ = "lbpair_firewall"


def __virtual__():
    return __virtualname__


def vrrp_rules():
    """
    The VRRP rules this node needs, each with whether it is in place.

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_firewall.vrrp_rules
    """
    return firewall.rules(pillar.minion_model(__pillar__, __opts__, __context__))


def vrrp_allow(test=False):
    """
    Add the missing VRRP rules and remove lbpair's rules for nodes no longer in
    the pair. Returns ``{"added": [...], "removed": [...]}`` (what would change,
    with ``test=True``).

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_firewall.vrrp_allow test=True
        salt 'lb*' lbpair_firewall.vrrp_allow
    """
    return firewall.allow(pillar.minion_model(__pillar__, __opts__, __context__), test=bool(test))


def rogue_senders():
    """
    The addresses, other than the pair's nodes, whose VRRP adverts with one of
    the pair's VRIDs were dropped on this node (nftables: within the last hour;
    iptables: the last 100 since the rule was made), sorted.

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_firewall.rogue_senders
    """
    return firewall.rogue_senders(pillar.minion_model(__pillar__, __opts__, __context__))


def peers_rules():
    """
    The rules keeping HAProxy's peers port to the pair's nodes, each with whether it is in place.

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_firewall.peers_rules
    """
    return peers.rules(pillar.minion_model(__pillar__, __opts__, __context__))


def prometheus_rules():
    """
    The rules keeping HAProxy's Prometheus exporter (``lbpair:haproxy:prometheus``) to its
    ``allow`` networks, each with whether it is in place (none without an exporter).

    CLI Example:

    .. code-block:: bash

        salt 'lb*' lbpair_firewall.prometheus_rules
    """
    return exporter.rules(pillar.minion_model(__pillar__, __opts__, __context__))
