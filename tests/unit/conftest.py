"""What the unit tests share."""

import resource
import signal

import pytest


@pytest.fixture
def file_size_limit():
    """Lower RLIMIT_FSIZE (a write past it fails with EFBIG, as a full disk fails with ENOSPC); restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def limit(size):
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))

    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)



@pytest.fixture(scope="session")
def node_exporter_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("node-exporter")


@pytest.fixture(autouse=True)
def metrics_file_default(node_exporter_folder, monkeypatch):
    """The master's default metrics file in a folder of the tests, never in the host's node_exporter folder (tests run as root)."""
    from saltext.lbpair.master import reactions_config

    monkeypatch.setattr(reactions_config, "DEFAULT_METRICS_FILE", str(node_exporter_folder / "lbpair_master.prom"))
