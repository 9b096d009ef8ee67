"""
The integration suites' shared rigs, as pytest plugins (``tests/conftest.py`` loads them all):
:mod:`.session` the salt-master and its minions, :mod:`.receivers` the servers the reactions reach,
:mod:`.pair` a keepalived pair, :mod:`.journal` what the nodes journalled and the master recorded.
They build on ``lab/`` (the lab and the benchmarks never import the tests).
"""
