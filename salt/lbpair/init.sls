# An lbpair load-balancer node: VRRP allowed from the peer, HAProxy, keepalived.
include:
  - lbpair.firewall
  - lbpair.haproxy
  - lbpair.keepalived

# lbpair's node functions (hand_over holding the VIPs' new connections, preferred,
# render) read the minion's in-memory pillar, which a state run does not update:
# refresh it once the configuration this pillar gives has changed.
lbpair's node functions see the pillar just applied:
  module.run:
    - saltutil.refresh_pillar:
      - wait: True
    - onchanges:
      - lbpair_haproxy: HAProxy configuration is managed
      - lbpair_keepalived: keepalived configuration is managed
