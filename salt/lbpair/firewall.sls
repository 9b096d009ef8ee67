The firewall tools are installed:
  pkg.installed:
    - pkgs:
      - iptables
      - nftables

VRRP from the other nodes of the pair is accepted:
  lbpair_firewall.vrrp_allowed:
    - require:
      - pkg: The firewall tools are installed
