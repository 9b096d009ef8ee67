{#- The master compiled a minion's pillar (a highstate, saltutil.refresh_pillar, its start):
    lbpair learns its pair afresh at the next reaction. #}
lbpair learns a node's pillar afresh:
  runner.lbpair.on_pillar_refresh:
    - args:
      - tag: {{ tag | json }}
