{#- A minion (re)connected: catch up with the transitions it journalled meanwhile
    (the runner ignores minions that are not nodes of the pair). #}
lbpair catches up with a reconnected node:
  runner.lbpair.on_minion_start:
    - args:
      - tag: {{ tag | json }}
      - data: {{ data | json }}
