"""The package as pip gets it: a wheel built from the checkout, installed in a fresh venv with Salt."""

import json
import pathlib
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO

STATE_TREE = {  # what a pip-installed master serves from file_roots (docs: the README's Install)
    "top.sls",
    "pillar.example",
    "lbpair/init.sls",
    "lbpair/haproxy.sls",
    "lbpair/keepalived.sls",
    "lbpair/firewall.sls",
    "reactor/lbpair/vrrp.sls",
    "reactor/lbpair/minion_start.sls",
    "master.d/lbpair.conf",
    "prometheus/lbpair.rules.yml",
}
SALT = "salt==3008.4"  # the version scripts/setup installs


def run(*command, **kwargs):
    proc = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False, **kwargs)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, source_tree):
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out), str(source_tree))
    (built,) = out.glob("saltext_lbpair-*.whl")
    return built


def test_the_wheel_installs_only_the_saltext_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"saltext"}
    assert "saltext/__init__.py" not in names  # a namespace shared with other extensions
    assert "saltext/lbpair/node/beacon.py" in names and "saltext/lbpair/runners/lbpair.py" in names


def test_the_wheel_ships_the_state_tree(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {name.removeprefix("saltext/lbpair/state_tree/") for name in names if name.startswith("saltext/lbpair/state_tree/")}
    assert STATE_TREE <= shipped
    for path in STATE_TREE:
        assert zipfile.ZipFile(wheel).read(f"saltext/lbpair/state_tree/{path}") == (REPO / "salt" / path).read_bytes()


LOADED = """
import json, sys
import salt.config, salt.loader
import saltext.lbpair.state_tree as tree
minion = salt.config.minion_config(sys.argv[1])
master = {**salt.config.master_config("/nonexistent"), "root_dir": minion["root_dir"], "cachedir": minion["cachedir"]}
functions = salt.loader.minion_mods(minion)
print(json.dumps({
    "state_tree": tree.__path__[0],
    "modules": sorted(name for name in functions if name.startswith("lbpair_")),
    "states": sorted(name for name in salt.loader.states(minion, functions, {}, {}) if name.startswith("lbpair_")),
    "runners": sorted(name for name in salt.loader.runner(master) if name.startswith("lbpair.")),
}))
"""


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh venv with Salt and the wheel, as an operator's pip install gives them."""
    path = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", str(path))
    run(str(path / "bin/pip"), "install", "-q", "--disable-pip-version-check", SALT, f"{wheel}[minion,master]")
    return path


def minion_config(folder, **extra):
    lines = ["id: lb1", "file_client: local", f"root_dir: {folder / 'root'}", "log_level_logfile: quiet"]
    lines += [f"{key}: {json.dumps(value)}" for key, value in extra.items()]
    (folder / "minion").write_text("\n".join(lines) + "\n")
    return folder / "minion"


def test_salts_loader_finds_every_module_of_the_installed_wheel(venv, tmp_path):
    config = minion_config(tmp_path)
    # outside the checkout, without PYTHONPATH: only what the wheel installed
    loaded = json.loads(run(str(venv / "bin/python"), "-c", LOADED, str(config), cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}))
    assert pathlib.Path(loaded["state_tree"]).is_relative_to(venv)
    assert "lbpair_haproxy.render" in loaded["modules"] and "lbpair_keepalived.status" in loaded["modules"]
    assert "lbpair_firewall.vrrp_allowed" in loaded["states"] and "lbpair_haproxy.configured" in loaded["states"]
    assert "lbpair.history" in loaded["runners"] and "lbpair.status" in loaded["runners"]


def test_a_minion_serves_the_installed_state_tree_from_file_roots(venv, tmp_path):
    tree = run(str(venv / "bin/python"), "-c", "import saltext.lbpair.state_tree as t; print(t.__path__[0])", cwd=tmp_path).strip()
    minion_config(tmp_path, file_roots={"base": [tree]})
    salt_call = [str(venv / "bin/salt-call"), "-c", str(tmp_path), "--local", "--out=json"]
    served = json.loads(run(*salt_call, "cp.list_master", cwd=tmp_path))["local"]
    assert STATE_TREE - {"pillar.example"} <= set(served)
    top = json.loads(run(*salt_call, "state.show_top", cwd=tmp_path))["local"]
    assert "lbpair" in json.dumps(top)
