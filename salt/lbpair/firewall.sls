The firewall tools are installed:
  pkg.installed:
    - pkgs:
      - iptables
      - nftables

VRRP from the other nodes of the pair is accepted:
  lbpair_firewall.vrrp_allowed:
    - require:
      - pkg: The firewall tools are installed

HAProxy's peers port accepts only the nodes of the pair:
  lbpair_firewall.peers_allowed:
    - require:
      - pkg: The firewall tools are installed

HAProxy's Prometheus exporter accepts only the networks the pillar allows:
  lbpair_firewall.prometheus_allowed:
    - require:
      - pkg: The firewall tools are installed
