"""
The names of keepalived's track files (:mod:`saltext.lbpair.node.track` writes and reads them on the node):
where they live, lbpair's own, and what a pillar's own may be called. The pillar's schema checks
``lbpair:vrrp:track_files`` against them.
"""

import re

DIRECTORY = "/var/lib/lbpair/track"
HAPROXY = "haproxy"
MAINTENANCE = "maintenance"
HANDOVER = "handover"
DEFER = "defer"
#: lbpair's own track files, in the order keepalived.conf lists them
NAMES = (HAPROXY, MAINTENANCE, HANDOVER, DEFER)
#: the files a non-zero value puts in FAULT (weight 0); the others lower the priority
FAULT_NAMES = (HAPROXY, MAINTENANCE, HANDOVER)
#: keepalived's name for a track file: ``lbpair_<name>``
BLOCK_PREFIX = "lbpair_"
FILE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
