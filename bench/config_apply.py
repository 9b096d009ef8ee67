"""
Benchmark: rendering, validating and applying the configuration for 10, 100 and
1,000 services (2 to 10 servers each), then 1,000 routed HTTPS services (a certificate
each, from the pillar; the same pillar as a ``#!json`` file for Salt's json renderer; then the
same certificates as files on the node given by ``path``), peak memory, and the schema-time rows
of :mod:`bench.schema_bounds` (caps and crafted inputs; that module runs them alone, without root).

Runs on a real lab machine (systemd-nspawn, Debian 12) with salt-call in
masterless mode, so the apply goes through Salt, the real binaries and
``systemctl reload`` as in production. Prints one table; asserts nothing.

    .venv/bin/python -m bench.config_apply          # root; builds the lab root on first use

Figures to compare with (the public haproxy-formula on the same data, measured
on our machines, see ../shared/FACTS.md): idempotent re-apply of 1,000 listen
sections 1.34 s (0.95 s of it salt-call start-up), peak memory 85 MiB.
"""

import json
import pathlib
import statistics
import time

import yaml

from bench import schema_bounds
from lab import pki, scenarios, topology
from saltext.lbpair.model import pillar
from saltext.lbpair.node import haproxy, keepalived_config

REPO = pathlib.Path(__file__).resolve().parent.parent

SIZES = (10, 100, 1000)
#: routed HTTPS services (a certificate each, two backends, routes by Host and path, HTTP redirected)
HTTPS_SIZE = 1000
NODE = "lb1"
SALT_CALL = "/usr/bin/salt-call"
# Runs a command and prints its wall time and the peak RSS of its process tree (KiB).
MEASURE = (
    "import resource, subprocess, sys, time; start = time.monotonic(); "
    "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "print(time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, proc.returncode); "
    "sys.stdout.write(proc.stdout)"
)
PYTHON = "/opt/saltenv/bin/python"
#: Salt's own load of the pillar file (what its yaml or json renderer does), median of 3, in seconds
PILLAR_LOAD = (
    "import statistics, time\n"
    "import salt.utils.json\n"
    "import salt.utils.yamlloader as loader\n"
    "text = open('/srv/pillar/lbpair.sls').read()\n"
    "is_json = text.startswith('#!json')\n"
    "times = []\n"
    "for _ in range(3):\n"
    "    start = time.perf_counter()\n"
    "    salt.utils.json.loads(text.partition('\\n')[2]) if is_json else loader.load(text, Loader=loader.SaltYamlSafeLoader)\n"
    "    times.append(time.perf_counter() - start)\n"
    "print(statistics.median(times))\n"
)
#: a pillar file Salt's json renderer reads (what a generator would write): its load is ~70x faster than YAML's
JSON_SHEBANG = "#!json\n"


def seed_pillar():
    with open(REPO / "salt" / "pillar.example", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["lbpair"]


def masterless_files():
    """The extension, the state tree and a masterless minion config, for the machine."""
    files = {
        "/etc/salt/minion.d/bench.conf": (
            "file_client: local\nfile_roots: {base: [/srv/salt]}\npillar_roots: {base: [/srv/pillar]}\n"
        ),
        "/srv/pillar/top.sls": "base:\n  '*':\n    - lbpair\n",
        "/srv/salt/top.sls": (REPO / "salt" / "top.sls").read_text(),
    }
    folders = (
        ("_utils/saltext/lbpair", "_utils/saltext/lbpair"),  # the library the loader modules import
        ("_modules", "_modules"),
        ("_states", "_states"),
        ("salt/lbpair", "lbpair"),
        ("bench/baseline", "bench_baseline"),
    )
    for folder, target in folders:
        for path in sorted((REPO / folder).rglob("*.*")):  # the library's sub-packages too
            if "__pycache__" not in path.parts:
                files[f"/srv/salt/{target}/{path.relative_to(REPO / folder)}"] = path.read_text()
    return files


def median_seconds(func, runs=5):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def render_times(lbpair_pillar):
    model = pillar.for_node(pillar.normalize(lbpair_pillar), NODE)
    haproxy_render = median_seconds(lambda: haproxy.render_config(model))
    keepalived_render = median_seconds(lambda: keepalived_config.render_config(model))
    whole = median_seconds(lambda: haproxy.render_config(pillar.for_node(pillar.normalize(lbpair_pillar), NODE)))
    texts = (haproxy.render_config(model), keepalived_config.render_config(model))
    return haproxy_render, keepalived_render, whole, texts


def measured(box, command):
    """Run *command* in the machine; return (seconds, peak MiB, stdout)."""
    out = box.run([PYTHON, "-c", MEASURE, *command], timeout=600).stdout
    first, _, rest = out.partition("\n")
    seconds, peak_kib, returncode = first.split()
    if returncode not in ("0", "2"):  # 2: salt-call's "some states failed", reported below
        raise RuntimeError(f"{command} failed ({returncode}): {rest[-2000:]}")
    return float(seconds), int(peak_kib) / 1024, rest


def validate_time(box, daemon, text):
    path = f"/tmp/bench-{daemon}.conf"
    box.run(["tee", path], input=text)
    command = ["haproxy", "-c", "-q", "-f", path] if daemon == "haproxy" else ["keepalived", "-t", "-f", path]
    return statistics.median(measured(box, command)[0] for _ in range(3))


def apply(box, sls="lbpair"):
    """state.apply SLS; returns (seconds, peak MiB, states changed); raises if a state failed."""
    seconds, peak, out = measured(box, [SALT_CALL, "--local", "--out=json", "state.apply", sls])
    states = json.loads(out)["local"].values()
    changed = sorted(state["__id__"] for state in states if state["changes"])
    failed = sorted(state["__id__"] for state in states if state["result"] is not True)
    if failed:
        raise RuntimeError(f"states failed: {failed}")
    return seconds, peak, changed


def median_apply(applies):
    """The median re-apply by time, its peak memory and the union of what it changed."""
    seconds = statistics.median(run[0] for run in applies)
    peak = max(run[1] for run in applies)
    changed = sorted({state for run in applies for state in run[2]})
    return seconds, peak, changed


def main():
    rows, baseline = [], []
    bounds = schema_bounds.rows()  # in-process, before the lab loads the machine
    with topology.Lab(hosts=[NODE], files={NODE: masterless_files()}) as lab:
        box = lab.machine(NODE)
        box.run(["systemctl", "stop", "salt-minion"])  # masterless: the daemon is not needed
        box.run([SALT_CALL, "--local", "saltutil.sync_all"], timeout=300)
        startup = statistics.median(measured(box, [SALT_CALL, "--local", "test.true"])[0] for _ in range(5))
        for size in SIZES:
            lbpair_pillar = scenarios.many_services(seed_pillar(), size)
            rows.append((size, *measure_size(box, lbpair_pillar)))
            baseline_first = apply(box, "bench_baseline")
            baseline_second = median_apply([apply(box, "bench_baseline") for _ in range(3)])
            baseline.append((size, baseline_first, baseline_second))
        https = scenarios.many_https_services(seed_pillar(), HTTPS_SIZE, pki.Ca("lbpair bench CA"))
        rows.append((f"{HTTPS_SIZE} TLS pem", *measure_size(box, https)))
        rows.append((f"{HTTPS_SIZE} TLS pem json", *measure_size(box, https, as_json=True)))
        on_node, files = scenarios.certificates_on_node(https)
        write_files(box, files)
        rows.append((f"{HTTPS_SIZE} TLS path", *measure_size(box, on_node)))
    print_table(startup, rows, baseline)
    print()
    schema_bounds.print_rows(bounds)


def write_files(box, files):
    """Write ``{path: text}`` into the machine (0600, directories 0700), as an ACME client would."""
    script = (
        "import json, os, sys\n"
        "for path, text in json.load(sys.stdin).items():\n"
        "    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)\n"
        "    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as handle:\n"
        "        handle.write(text)\n"
    )
    box.run([PYTHON, "-c", script], input=json.dumps(files))


def pillar_file(lbpair_pillar, as_json=False):
    """The text of ``/srv/pillar/lbpair.sls``: YAML, or JSON for Salt's json renderer."""
    if as_json:
        return JSON_SHEBANG + json.dumps({"lbpair": lbpair_pillar})
    return yaml.safe_dump({"lbpair": lbpair_pillar})


def measure_size(box, lbpair_pillar, as_json=False):
    """Render and check times, the first apply and the median re-apply of one pillar on the machine."""
    box.run(["tee", "/srv/pillar/lbpair.sls"], input=pillar_file(lbpair_pillar, as_json))
    haproxy_render, keepalived_render, whole_render, texts = render_times(lbpair_pillar)
    first = apply(box)  # before the checks: it writes the certificate files haproxy.cfg names
    haproxy_check = validate_time(box, "haproxy", texts[0])
    keepalived_check = validate_time(box, "keepalived", texts[1])
    second = median_apply([apply(box) for _ in range(3)])
    pillar_load = float(box.run([PYTHON, "-c", PILLAR_LOAD], timeout=600).stdout)
    return haproxy_render, keepalived_render, whole_render, pillar_load, haproxy_check, keepalived_check, first, second


def print_table(startup, rows, baseline):
    print(f"salt-call --local start-up (test.true, median of 5): {startup:.2f} s")
    print("render: median of 5, in-process; pillar load (Salt's YAML loader, or JSON for 'json' rows; in the machine)")
    print("and checks: median of 3; re-apply: median of 3, peak of 3; per service: (re-apply - start-up) / services")
    print(
        f"{'services':>18} {'render h/k ms':>14} {'schema+render ms':>16} {'pillar load s':>13} "
        f"{'haproxy -c s':>12} {'keepalived -t s':>15} "
        f"{'first apply s':>13} {'MiB':>5} {'re-apply s':>10} {'MiB':>5} {'ms/service':>10}  re-apply changes"
    )
    for size, h_render, k_render, whole, pillar_load, h_check, k_check, first, second in rows:
        count = int(str(size).split()[0])
        print(
            f"{size:>18} {h_render * 1000:>6.1f}/{k_render * 1000:<6.1f} {whole * 1000:>16.1f} {pillar_load:>13.3f} {h_check:>12.3f} "
            f"{k_check:>15.3f} {first[0]:>13.2f} {first[1]:>5.0f} {second[0]:>10.2f} {second[1]:>5.0f} "
            f"{(second[0] - startup) / count * 1000:>10.2f}  {', '.join(second[2]) or 'none (nothing reloaded)'}"
        )
    print("\nbaseline on the same pillar and machine: one Jinja template + file.managed (bench/baseline),")
    print("HAProxy only, no keepalived, firewall, packages or services:")
    print(f"{'services':>8} {'first apply s':>13} {'MiB':>5} {'re-apply s':>10} {'MiB':>5}")
    for size, first, second in baseline:
        print(f"{size:>8} {first[0]:>13.2f} {first[1]:>5.0f} {second[0]:>10.2f} {second[1]:>5.0f}")
    print("reference, public haproxy-formula measured elsewhere (FACTS.md), 1,000 listen sections:")
    print("re-apply 1.34 s (0.95 s of it start-up), 85 MiB")


if __name__ == "__main__":
    main()
