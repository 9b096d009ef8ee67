"""
Benchmark: the schema time (``pillar.normalize``, in-process, median of 3) of the largest
inputs the size caps allow and of inputs crafted against the checks (routes shaped for the
old pairwise shadowing test, every path length, strings of 1 MiB). Each must stay under a
second. No root, no lab: quick to re-run; ``bench.config_apply`` prints the same rows.

    .venv/bin/python -m bench.schema_bounds
"""

import copy
import pathlib
import statistics
import time

import yaml

from lab import scenarios
from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar, services

REPO = pathlib.Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
LONGEST_PATH = 1024


def seed_pillar():
    with open(REPO / "salt" / "pillar.example", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["lbpair"]


def _server(index):
    return {"address": f"198.51.{100 + index // 60000 % 2}.{index // 250 % 250 + 1}", "port": 1024 + index % 60000}


def _servers(count, prefix="s"):
    return {f"{prefix}{index}": _server(index) for index in range(count)}


def _long_host(index):
    """A host name of 253 characters, unique by ``index``."""
    head = f"h{index}." + ("a" * 63 + ".") * 3
    return head + "b" * (253 - len(head))


def _routed(lbpair, routes, backends=1, servers=1, redirects=0):
    """``lbpair`` with one routed service ``big``: the seed's services replaced."""
    names = [f"b{index}" for index in range(backends)]
    service = {
        "vip": "203.0.113.50",
        "port": 80,
        "backends": {name: {"servers": _servers(servers, f"{name}s")} for name in names},
        "routes": [{**route, "backend": names[index % backends]} for index, route in enumerate(routes)],
        "default_backend": names[0],
    }
    if redirects:
        service["redirects"] = {_long_host(index): "target.example.net" for index in range(redirects)}
    return {**lbpair, "services": {"big": service}}


def largest_service(lbpair):
    """One routed service at every cap: backends of the most servers, routes (longest host and path), redirects."""
    routes = [{"host": _long_host(index), "path": "/" + "p" * (LONGEST_PATH - 1)} for index in range(services.MAX_ROUTES)]
    return _routed(lbpair, routes, services.MAX_BACKENDS, services.MAX_SERVERS, services.MAX_REDIRECTS)


def largest_pool(lbpair):
    """One plain service with the most servers a pool may have."""
    service = {"vip": "203.0.113.50", "port": 80, "servers": _servers(services.MAX_SERVERS)}
    return {**lbpair, "services": {"big": service}}


def quadratic_routes(lbpair):
    """The routes the old pairwise test was slowest on: none covers another (distinct hosts and paths)."""
    routes = [{"host": f"h{index}.example.net", "path": f"/p{index}/"} for index in range(services.MAX_ROUTES)]
    return _routed(lbpair, routes)


def every_path_length(lbpair):
    """Paths of every length, none a prefix of another: each route looks up a prefix per earlier length."""
    count = min(services.MAX_ROUTES, LONGEST_PATH - 2)
    routes = [{"path": "/" + "a" * length + "z"} for length in range(count)]
    return _routed(lbpair, routes)


def longest_paths(lbpair):
    """The longest paths, sharing all but their last characters."""
    routes = [{"path": "/" + "a" * (LONGEST_PATH - 5) + f"{index:04d}"} for index in range(services.MAX_ROUTES)]
    return _routed(lbpair, routes)


def most_services(lbpair, count=services.MAX_SERVICES):
    """The most services the caps allow, one server each."""
    return scenarios.many_services(lbpair, count, servers=lambda index: 1)


def thousand_services(lbpair):
    """1,000 services with 10 servers each (what bench.config_apply applies)."""
    return scenarios.many_services(lbpair, 1000, servers=lambda index: 10)


def _with(change):
    def build(lbpair):
        lbpair = copy.deepcopy(lbpair)
        change(lbpair)
        return lbpair

    return build


def _foo(lbpair):
    return lbpair["services"]["foo"]


#: an options line of about 1 KiB that keeps HAProxy's tokenizer busiest: escaped quotes within quotes
ESCAPED_LINE = 'http-request set-header X "' + '\\"' * 490 + '"'
#: and one that keeps the sample expression check busiest: a converter chain
CONVERTER_LINE = "http-request set-header X %[path" + ",lower" * 160 + "]"
#: a balance whose expression nests as deep as a line allows
NESTED_BALANCE = "hash path" + ",regsub(" * 100 + ")" * 100


#: (what, build(seed pillar)): refused inputs time their refusal
CASES = (
    ("1,000 services x 10 servers", thousand_services),
    (f"{services.MAX_SERVICES:,} services (cap) x 1 server", most_services),
    ("largest routed service (all caps)", largest_service),
    (f"one pool of {services.MAX_SERVERS:,} servers (cap)", largest_pool),
    (f"{services.MAX_ROUTES:,} routes, none covering", quadratic_routes),
    ("routes of every path length", every_path_length),
    (f"{services.MAX_ROUTES:,} longest paths", longest_paths),
    ("1 MiB service name (refused)", _with(lambda p: p["services"].update({"x" * MIB: _foo(p)}))),
    ("1 MiB server address (refused)", _with(lambda p: _foo(p)["servers"]["foo1"].update(address="1" * MIB))),
    ("1 MiB of distinct characters (refused)",
     _with(lambda p: _foo(p)["servers"]["foo1"].update(address="".join(map(chr, range(0x10000, 0x10000 + MIB)))))),
    ("1 MiB host in a redirect (refused)", _with(lambda p: _foo(p).update(redirects={"a." * (MIB // 2): "b.example.net"}))),
    ("1 MiB balance (refused)", _with(lambda p: _foo(p).update(balance="x" * MIB))),
    ("64 options lines of escaped quotes (cap)", _with(lambda p: _foo(p).update(options=[ESCAPED_LINE] * 64))),
    ("64 options lines of converters (cap)", _with(lambda p: _foo(p).update(options=[CONVERTER_LINE] * 64))),
    ("a balance nested 100 deep", _with(lambda p: _foo(p).update(balance=NESTED_BALANCE))),
    ("1 MiB options line (refused)", _with(lambda p: _foo(p).update(options=["retries " + "'1'" * (MIB // 3)]))),
    ("a route past the cap (refused)",
     lambda p: _routed(p, [{"path": f"/{index}"} for index in range(services.MAX_ROUTES * 10)])),
)  # fmt: skip


def schema_seconds(lbpair, runs=3):
    """Median time of ``pillar.normalize`` and whether it accepted the pillar."""
    times, accepted = [], True
    for _ in range(runs):
        start = time.perf_counter()
        try:
            pillar.normalize(lbpair)
        except InvalidValue:
            accepted = False
        times.append(time.perf_counter() - start)
    return statistics.median(times), accepted


def rows():
    """``(what, seconds, accepted)`` of every case."""
    seed = seed_pillar()
    return [(what, *schema_seconds(build(seed))) for what, build in CASES]


def print_rows(measured):
    print("schema time (pillar.normalize, in-process, median of 3); each must be under 1 s")
    print(f"{'input':>42} {'schema s':>9}  result")
    for what, seconds, accepted in measured:
        print(f"{what:>42} {seconds:>9.3f}  {'valid' if accepted else 'refused'}")


def main():
    print_rows(rows())


if __name__ == "__main__":
    main()
