"""Both ways users install lbpair: synced from file_roots, or pip-installed."""

import json
import subprocess
import sys

from tests.conftest import REPO

SALT_CALL = [sys.executable, "-c", "import salt.scripts; salt.scripts.salt_call()"]


def write_minion_config(config_dir, root, **extra):
    lines = ["id: lb1", "file_client: local", f"root_dir: {root}", "log_level_logfile: quiet"]
    lines += [f"{key}: {json.dumps(value)}" for key, value in extra.items()]
    (config_dir / "minion").write_text("\n".join(lines) + "\n")


def salt_call(config_dir, *args, env=None):
    proc = subprocess.run(
        [*SALT_CALL, "-c", str(config_dir), "--local", "--out=json", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)["local"]


def test_sync_all_from_file_roots_brings_modules_and_states(tmp_path):
    write_minion_config(tmp_path, tmp_path / "root", file_roots={"base": [str(REPO)]})
    synced = salt_call(tmp_path, "saltutil.sync_all")
    assert "modules.lbpair_config" in synced["modules"]
    assert "states.lbpair_haproxy" in synced["states"]
    functions = salt_call(tmp_path, "sys.list_functions", "lbpair_haproxy")
    assert "lbpair_haproxy.render" in functions
    assert "lbpair_haproxy.configured" in salt_call(tmp_path, "sys.list_state_functions", "lbpair_haproxy")


def test_pip_install_registers_with_salts_loader(pip_installed, tmp_path):
    write_minion_config(tmp_path, tmp_path / "root")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(pip_installed)}
    functions = salt_call(tmp_path, "sys.list_functions", "lbpair_keepalived", env=env)
    assert "lbpair_keepalived.render" in functions
    states = salt_call(tmp_path, "sys.list_state_functions", "lbpair_firewall", env=env)
    assert states == ["lbpair_firewall.peers_allowed", "lbpair_firewall.prometheus_allowed", "lbpair_firewall.vrrp_allowed"]
    assert "lbpair.history" in salt_call(tmp_path, "sys.list_runner_functions", "lbpair", env=env)
    # Beacons are found the same way, in the package's beacons/ folder.
    assert (pip_installed / "saltext" / "lbpair" / "beacons" / "lbpair_vrrp.py").is_file()


LOADER_VERDICTS = """
import json, sys
import salt.config, salt.loader
minion = salt.config.minion_config(sys.argv[1])
master = {**salt.config.master_config("/nonexistent"), "root_dir": minion["root_dir"], "cachedir": minion["cachedir"]}
verdicts = {}
for loader, name in ((salt.loader.beacons(minion, salt.loader.minion_mods(minion)), "lbpair_vrrp.beacon"),
                     (salt.loader.runner(master), "lbpair.status"),
                     (salt.loader.minion_mods(minion), "lbpair_keepalived.status")):
    verdicts[name] = True if name in loader else loader.missing_fun_string(name)
print(json.dumps(verdicts))
"""


def blocked(folder, *modules):
    """A folder that, first on PYTHONPATH, makes ``modules`` fail to import as if not installed."""
    for module in modules:
        (folder / module).mkdir(parents=True)
        (folder / module / "__init__.py").write_text(f'raise ImportError("No module named {module!r} (blocked)")\n')
    return folder


def test_a_missing_optional_dependency_is_named_instead_of_a_load_error(pip_installed, tmp_path):
    write_minion_config(tmp_path, tmp_path / "root")
    pythonpath = f"{blocked(tmp_path / 'blocked', 'dbus_next', 'dns')}:{pip_installed}"
    proc = subprocess.run(
        [sys.executable, "-c", LOADER_VERDICTS, str(tmp_path / "minion")],
        capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path,  # not the checkout's _utils/
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": pythonpath},
    )  # fmt: skip
    verdicts = json.loads(proc.stdout.splitlines()[-1])
    assert "No module named 'dbus_next'" in verdicts["lbpair_vrrp.beacon"] and "[minion]" in verdicts["lbpair_vrrp.beacon"]
    assert "No module named 'dns'" in verdicts["lbpair.status"] and "[master]" in verdicts["lbpair.status"]
    assert verdicts["lbpair_keepalived.status"] is True  # falls back to the JSON dump without dbus-next
