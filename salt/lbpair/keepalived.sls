# procps: pgrep, the seed's check that HAProxy runs; curl: the probe that asks HAProxy itself.
keepalived is installed:
  pkg.installed:
    - pkgs:
      - keepalived
      - procps
      - curl

# systemd sets keepalived's haproxy track file when HAProxy stops for good; the
# probe finds a hung HAProxy. Runs before keepalived's configuration, which uses
# them (file order), but is not its requisite: with a bad pillar both fail, each
# naming the pillar key. Without the probe script, keepalived -t rejects the
# configuration anyway.
HAProxy is watched for keepalived:
  lbpair_haproxy.watched:
    - require:
      - pkg: keepalived is installed

# A handover cut short (the minion killed midway) leaves the node in FAULT with new
# connections held: any highstate undoes that, unless a handover is under way.
An interrupted handover is undone:
  lbpair_keepalived.handover_undone

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
