"""
The integration suites' shared rigs. Pytest plugins, which ``tests/conftest.py`` loads:
:mod:`.session` the salt-master and its minions, :mod:`.syndic` syndics below that master,
:mod:`.receivers` the servers the reactions reach, :mod:`.pair` a keepalived pair. Helpers:
:mod:`.journal`, what the nodes journalled and the master saw and recorded. They build on ``lab/``
(the lab and the benchmarks never import the tests).
"""
