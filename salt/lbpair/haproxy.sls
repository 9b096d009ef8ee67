HAProxy is installed:
  pkg.installed:
    - name: haproxy

# The backup node's HAProxy binds the virtual IPs before keepalived gives it them.
Virtual IPs can be bound before they arrive:
  sysctl.present:
    - name: net.ipv4.ip_nonlocal_bind
    - value: 1

Virtual IPv6 addresses can be bound before they arrive:
  sysctl.present:
    - name: net.ipv6.ip_nonlocal_bind
    - value: 1

HAProxy configuration is managed:
  lbpair_haproxy.configured:
    - require:
      - pkg: HAProxy is installed
      - sysctl: Virtual IPs can be bound before they arrive
      - sysctl: Virtual IPv6 addresses can be bound before they arrive

# No watch: lbpair_haproxy.configured reloads HAProxy itself, seamlessly.
HAProxy is running:
  service.running:
    - name: haproxy
    - enable: True
    - require:
      - lbpair_haproxy: HAProxy configuration is managed
