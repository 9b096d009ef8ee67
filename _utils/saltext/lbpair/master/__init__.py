"""
What runs on the Salt master: the failover reactions, planned moves, the history, notifications,
DNS updates and the certificate watch.
"""
