"""
A beacon for the multi-master facts: one event per beacon tick, numbered, so a master that
misses one (or gets one twice) shows in the numbers. Tag ``salt/beacon/<minion>/mm_tick/tick``,
data ``{"seq", "time"}``.
"""

import time

__virtualname__ = "mm_tick"


def validate(config):
    return True, ""


def beacon(config):
    seq = __context__.get("mm_tick.seq", 0) + 1
    __context__["mm_tick.seq"] = seq
    return [{"tag": "tick", "seq": seq, "time": time.time()}]
