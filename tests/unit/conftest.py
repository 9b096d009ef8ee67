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
