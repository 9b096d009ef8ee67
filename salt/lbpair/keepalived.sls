# procps: pgrep, the default check that HAProxy runs.
keepalived is installed:
  pkg.installed:
    - pkgs:
      - keepalived
      - procps

keepalived configuration is managed:
  lbpair_keepalived.configured:
    - require:
      - pkg: keepalived is installed

# No watch: a restart would make the MASTER give up the virtual IPs.
# lbpair_keepalived.configured reloads keepalived itself (SIGHUP).
keepalived is running:
  service.running:
    - name: keepalived
    - enable: True
    - require:
      - lbpair_keepalived: keepalived configuration is managed
