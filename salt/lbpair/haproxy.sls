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

# OCSP stapling (lbpair_haproxy.ocsp_refresh): responses are fetched for the certificates the
# configuration state just installed, and refreshed hourly (responders update them daily or more
# often; a failed refresh keeps the previous response, which stays good until its nextUpdate).
OCSP responses are fetched for the installed certificates:
  module.run:
    - lbpair_haproxy.ocsp_refresh: []
    - onchanges:
      - lbpair_haproxy: HAProxy configuration is managed
    - require:
      - service: HAProxy is running

OCSP responses are refreshed hourly:
  schedule.present:
    - name: lbpair_ocsp_refresh
    - function: lbpair_haproxy.ocsp_refresh
    - hours: 1
    - splay: 600
    - run_on_start: True
    - return_job: False
