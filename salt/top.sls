# Example top file: the nodes of the pair are the minions named in lbpair:nodes.
base:
  'lb1,lb2':
    - match: list
    - lbpair
