{#- An lbpair_vrrp beacon event (a VRRP transition or a warning): the lbpair runner
    decides what it is worth; nothing in the event is trusted here. #}
lbpair reacts to a VRRP event:
  runner.lbpair.on_beacon:
    - args:
      - tag: {{ tag | json }}
      - data: {{ data | json }}
