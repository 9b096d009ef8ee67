"""
The outside world the reactions reach, for the whole session: BIND9, the SMTP server and the
webhook receiver of :class:`lab.services.ReactionServices`, on loopback (in the suite's network
namespace). A suite may override ``webhook_path`` (the secret part of the hook's URL).
"""

import pytest

from lab.services import ReactionServices


@pytest.fixture(scope="session")
def webhook_path():
    return "/hooks/lbpair"


@pytest.fixture(scope="session")
def services(tmp_path_factory, webhook_path):
    """named (TSIG updates), the SMTP server (STARTTLS, login) and the webhook receiver, started."""
    with ReactionServices(tmp_path_factory.mktemp("services"), webhook_path=webhook_path) as started:
        yield started


def clear_received(services):
    """Forget the mail and the webhook posts received so far."""
    services.smtp.mailbox.messages.clear()
    services.webhook.posts.clear()
