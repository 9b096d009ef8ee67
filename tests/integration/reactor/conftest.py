"""
Reactor tests: a real salt-master running lbpair's reactor and runners, real
minions (lb1, lb2: the pair; lb3: not a node), two real keepalived nodes in
network namespaces with private dbus-daemons, and on loopback a real BIND9
``named`` accepting TSIG-signed updates, an SMTP server (aiosmtpd, STARTTLS and
authentication) and an HTTP webhook receiver.

Salt's processes and the servers live in the root namespace on 127.0.0.1 only;
keepalived runs only in the ``lbpair-r-*`` namespaces. The master, the minions, the servers and
the pair are the shared rigs of ``tests/support/``, set up here.
"""

import pytest

from lab.salt_master import EXTENSION_DIRS, reactor_settings
from lab.util import small_tmpfs, work_dir
from tests.support.harness import Harness, start_afresh
from tests.support.pair import restore
from tests.support.session import wait_for_minion

WEBHOOK_TOKEN = "hook-secret-Q7"
INSTANCE = "lbpair_51"
PAIR = ("lb1", "lb2")
DAMPING_WINDOW = 10
SETTLE = 1.5


@pytest.fixture(scope="session")
def workdir():
    # Outside /tmp: each keepalived gets its own /tmp (TMPDIR) for its JSON dump.
    with work_dir("lbpair-reactor-") as path:
        yield path


@pytest.fixture(scope="session")
def webhook_path():
    return f"/hooks/{WEBHOOK_TOKEN}"


@pytest.fixture(scope="session")
def keepalived_prefix():
    return "lbpair-r"


@pytest.fixture(scope="session")
def history_dir(workdir):
    """The master's history folder: a small tmpfs of its own, which a test can fill up."""
    path = workdir / "history"
    path.mkdir()
    with small_tmpfs(path, "4m"):
        yield path


@pytest.fixture(scope="session")
def reactions(services, history_dir):
    """The lbpair_reactions block of the test master: the lab's, tuned for short tests."""
    block = services.reactions_block(
        {"lb1": "192.0.2.11", "lb2": "192.0.2.12"}, history_dir / "history.jsonl", damping_window=DAMPING_WINDOW
    )
    block["history"]["max_bytes"] = 1_000_000
    block["confirm"] = {"timeout": 10, "settle": SETTLE}
    block["dns"].update(attempts=3, backoff=0.5, timeout=2)
    return block


@pytest.fixture(scope="session")
def salt_master_id():
    return "lbpair-reactor-master"


@pytest.fixture(scope="session")
def salt_master_overrides(state_tree, reactions):
    return {**EXTENSION_DIRS, "file_roots": {"base": [str(state_tree)]}, **reactor_settings(reactions)}


@pytest.fixture(scope="session")
def minion_overrides(keepalived_pair):
    """The pair's minions, pointed at their keepalived, and lb3, which is no node."""
    pair = {name: {**EXTENSION_DIRS, "lbpair_keepalived": keepalived_pair.nodes[name].minion_options()} for name in PAIR}
    return {**pair, "lb3": dict(EXTENSION_DIRS)}


@pytest.fixture
def lab(keepalived_pair, minions, salt_master, salt_cli, services, reactions, history_dir, event_listener):
    """A fresh start per test: lb1 MASTER, the pair's minions answering, empty history and reaction state, nothing received."""
    restore(keepalived_pair)
    for node in PAIR:  # a minion a test restarted may take a while to answer again
        wait_for_minion(salt_cli, node, timeout=120)
    start_afresh(reactions, history_dir, minions, services, DAMPING_WINDOW)
    yield Harness(keepalived_pair, minions, salt_master, services, reactions, event_listener)
    restore(keepalived_pair)
