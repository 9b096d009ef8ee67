"""
Functional tests: lbpair's modules and states through Salt's loader, checked by
the real ``haproxy`` and ``keepalived`` binaries.

The whole module runs inside a network namespace of its own that holds an
``eth0`` (``keepalived -t`` checks that the VRRP interface exists). There is no
service manager here, so Salt's ``service`` functions are replaced by a
recorder; real reloads are covered by the integration tests.
"""

import copy

import pytest
from saltfactories.utils.functional import Loaders

from lab import netns
from tests.conftest import EXTENSION_DIRS
from tests.functional.rigs import node_with_eth0

NAMESPACE = "lbpair-functional"


@pytest.fixture(scope="session")
def node_namespace():
    with node_with_eth0(NAMESPACE) as namespace:
        yield namespace


@pytest.fixture(autouse=True)
def in_node_namespace(node_namespace):
    """Each test runs in the node's namespace, and the process leaves it after the test."""
    with netns.enter(node_namespace):
        yield


@pytest.fixture
def live_dir(tmp_path):
    return tmp_path / "etc"


@pytest.fixture
def minion_opts(salt_factories, live_dir):
    overrides = {
        **EXTENSION_DIRS,
        "file_client": "local",
        "lbpair_haproxy": {"config_file": str(live_dir / "haproxy" / "haproxy.cfg")},
        "lbpair_keepalived": {"config_file": str(live_dir / "keepalived" / "keepalived.conf")},
    }
    factory = salt_factories.salt_minion_daemon("lb1", overrides=overrides)
    return factory.config.copy()


class Services:
    """Stands in for Salt's ``service`` functions and records what was asked."""

    def __init__(self):
        self.running = {"haproxy": True, "keepalived": True}
        self.calls = []

    def status(self, name, *args, **kwargs):
        return self.running.get(name, False)

    def reload(self, name, *args, **kwargs):
        self.calls.append(("reload", name))
        return True

    def start(self, name, *args, **kwargs):
        self.calls.append(("start", name))
        self.running[name] = True
        return True


@pytest.fixture
def services():
    return Services()


@pytest.fixture
def pillar(seed_pillar):
    """The minion's ``lbpair`` pillar; tests change it in place."""
    return seed_pillar


@pytest.fixture
def loaders(minion_opts, pillar, services):
    minion_opts["pillar"] = {"lbpair": pillar}
    loaders = Loaders(minion_opts)
    modules = loaders.modules
    for name in ("status", "reload", "start"):
        # Load the real module first so that it cannot overwrite the stand-in later;
        # since Salt 3008 modules see their own __salt__ loader, which setitem writes through to.
        getattr(modules, "_dunder_salt", modules)[f"service.{name}"]
        modules[f"service.{name}"] = getattr(services, name)
    try:
        yield loaders
    finally:
        loaders.reset_state()


@pytest.fixture
def modules(loaders):
    return loaders.modules


@pytest.fixture
def states(loaders):
    return loaders.states


@pytest.fixture
def state_functions(loaders):
    """
    lbpair's state functions called directly: ``loaders.states`` runs states through
    ``state.single``, whose loader of its own never sees the service recorder.
    """
    import salt.loader

    return salt.loader.states(
        loaders.opts, functions=loaders.modules, utils=loaders.utils, serializers=loaders.serializers, context=loaders.context
    )


def set_pillar(loaders, pillar):
    """Replace the minion's lbpair pillar (the loader sees the same dict)."""
    loaders.opts["pillar"]["lbpair"] = copy.deepcopy(pillar)
