# An lbpair load-balancer node: VRRP allowed from the peer, HAProxy, keepalived.
include:
  - lbpair.firewall
  - lbpair.haproxy
  - lbpair.keepalived

