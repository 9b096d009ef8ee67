# The usual formula approach, for comparison on the same pillar and machine:
# one Jinja template rendered by file.managed, checked with haproxy -c.
# Written to its own file; it does not touch lbpair's configuration.
Baseline HAProxy configuration is rendered by a Jinja template:
  file.managed:
    - name: /etc/haproxy/baseline.cfg
    - source: salt://bench_baseline/haproxy.cfg.jinja
    - template: jinja
    - check_cmd: haproxy -c -f
