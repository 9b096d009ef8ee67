"""Pillar scenarios shared by tests and benchmarks: the seed, and N generated services."""

import copy

# VIPs from documentation ranges only, more than keepalived's 255 per block.
VIP_POOL = [f"203.0.113.{host}" for host in range(1, 251)] + [f"198.51.100.{host}" for host in range(101, 251)]


def many_services(pillar, count, servers=lambda index: 2 + index % 9):
    """Return a copy of *pillar* with *count* generated services of 2 to 10 servers each.

    Service *i* listens on ``VIP_POOL[i % 400]``, port ``80 + i // 400``: beyond 400 services,
    VIPs are shared on other ports.
    """
    generated = copy.deepcopy(pillar)
    generated["services"] = {
        f"svc{index:04d}": {
            "vip": VIP_POOL[index % len(VIP_POOL)],
            "port": 80 + index // len(VIP_POOL),
            "servers": {
                f"s{server}": {"address": f"192.0.2.{100 + server}", "port": 8000 + index % 1000}
                for server in range(servers(index))
            },
        }
        for index in range(count)
    }
    return generated
