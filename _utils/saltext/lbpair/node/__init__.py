"""
What runs on a load balancer: rendering and installing HAProxy's and keepalived's
configuration, their processes, the firewall, the certificates' files, the beacon and its journal.
"""
