"""The master warns before a node's TLS certificate expires, once a day, from what the node says (untrusted)."""

import pytest

from saltext.lbpair.master import cert_watch
from tests.unit.test_reaction_steps import Nodes, _reactions

SOON = {"source": "pillar", "names": ["shop.example.net"], "not_after": "2026-12-10T00:00:00+00:00", "days_left": 9, "warning": True}
LATER = {**SOON, "not_after": "2027-06-01T00:00:00+00:00", "days_left": 182, "warning": False}


class CertificateNodes(Nodes):
    """Nodes that also answer ``lbpair_haproxy.certificates`` with ``reports``."""

    def __init__(self, reports):
        super().__init__()
        self.reports = reports

    def ask(self, targets, fun, kwarg, timeout):
        if fun == cert_watch.FUNCTION:
            self.asked.append((tuple(targets), fun, kwarg))
            return {node: self.reports[node] for node in targets if node in self.reports}, {}
        return super().ask(targets, fun, kwarg, timeout)


def _warnings(reacting):
    return [record["message"] for record in reacting.history.read() if record["kind"] == "certificate"]


def test_a_certificate_that_expires_soon_is_recorded_and_announced_once_a_day(tmp_path):
    nodes = CertificateNodes({"lb1": {"shop": {"shop": SOON, "api": LATER}}, "lb2": {"shop": {"shop": SOON}}})
    reacting, _ = _reactions(tmp_path, nodes, certificates={"warn_days": 14})
    found = reacting.check_certificates(now=1000.0)
    assert found["expiring"] == [
        "shop certificate shop on lb1 expires on 2026-12-10 (9 days left)",
        "shop certificate shop on lb2 expires on 2026-12-10 (9 days left)",
    ]
    assert nodes.asked[0][2] == {"warn_days": 14}
    assert _warnings(reacting) == found["expiring"] and len(found["notified"]) == 2
    assert reacting.check_certificates(now=2000.0)["notified"] == []  # the same day: quiet
    assert len(reacting.check_certificates(now=1000.0 + cert_watch.QUIET)["notified"]) == 2
    assert len(_warnings(reacting)) == 4


def test_a_silent_node_is_named(tmp_path):
    reacting, _ = _reactions(tmp_path, CertificateNodes({"lb1": {}}))
    assert reacting.check_certificates()["silent"] == ["lb2"]


@pytest.mark.parametrize(
    "report",
    [
        {"shop\n@channel": {"shop": SOON}},
        {"shop": {"<!channel>": SOON}},
        {"shop": {"shop": {**SOON, "not_after": "soon <http://evil.example|click>"}}},
        {"shop": {"shop": {**SOON, "days_left": "9 <!here>"}}},
        {"shop": ["not", "a", "mapping"]},
        "a node that answers text",
    ],
)
def test_what_a_node_says_is_used_only_once_validated(tmp_path, report):
    reacting, _ = _reactions(tmp_path, CertificateNodes({"lb1": report, "lb2": {}}))
    assert reacting.check_certificates()["expiring"] == [] and _warnings(reacting) == []


def test_a_certificate_the_node_cannot_read_is_announced_without_its_error_text(tmp_path):
    unreadable = {"source": "/etc/haproxy/certs/api.pem", "error": "<!channel> secret-ish text", "warning": True}
    reacting, _ = _reactions(tmp_path, CertificateNodes({"lb1": {"shop": {"api": unreadable}}}))
    assert reacting.check_certificates()["expiring"] == ["shop certificate api on lb1 cannot be read or is not valid"]


STAPLED = {"responder": "http://ocsp.example.net/", "this_update": "2026-12-01T10:00:00+00:00", "next_update": "2026-12-08T10:00:00+00:00",
           "stale": False}  # fmt: skip
STALE_OCSP = {**LATER, "ocsp": {**STAPLED, "next_update": "2026-12-02T10:00:00+00:00", "stale": True}}
NO_OCSP = {**LATER, "ocsp": {"responder": "http://ocsp.example.net/", "missing": True, "stale": True}}


def _ocsp_warnings(reacting):
    return [record for record in reacting.history.read() if record["kind"] == "certificate" and record["code"] == "ocsp_stale"]


def test_a_stale_or_missing_ocsp_response_is_recorded_and_announced_once_a_day_apart_from_expiry(tmp_path):
    reports = {"lb1": {"shop": {"shop": STALE_OCSP, "api": {**LATER, "ocsp": STAPLED}}}, "lb2": {"shop": {"shop": {**NO_OCSP, **SOON}}}}
    nodes = CertificateNodes(reports)
    reacting, _ = _reactions(tmp_path, nodes, certificates={"warn_days": 14})
    found = reacting.check_certificates(now=1000.0)
    assert found["ocsp_stale"] == [
        "shop certificate shop on lb1 staples a stale OCSP response (next update was 2026-12-02 10:00 UTC)",
        "shop certificate shop on lb2 has no OCSP response although it names a responder",
    ]
    assert found["expiring"] == ["shop certificate shop on lb2 expires on 2026-12-10 (9 days left)"]
    assert len(found["notified"]) == 3 and [r["message"] for r in _ocsp_warnings(reacting)] == found["ocsp_stale"]
    assert reacting.check_certificates(now=2000.0)["notified"] == []  # the same day: quiet, both kinds
    assert len(reacting.check_certificates(now=1000.0 + cert_watch.QUIET)["notified"]) == 3


def test_a_certificate_without_a_responder_or_with_a_fresh_response_warns_of_nothing(tmp_path):
    rows = {"plain": {**LATER, "ocsp": {"none": "the certificate names no OCSP responder"}}, "fresh": {**LATER, "ocsp": STAPLED}}
    reacting, _ = _reactions(tmp_path, CertificateNodes({"lb1": {"shop": rows}}))
    assert reacting.check_certificates()["ocsp_stale"] == [] and _ocsp_warnings(reacting) == []


@pytest.mark.parametrize(
    "ocsp",
    [
        {"stale": True, "next_update": "soon <!channel>"},
        {"stale": True, "next_update": 12},
        {"stale": "yes"},
        ["stale"],
        "stale",
    ],
)
def test_what_a_node_says_of_its_ocsp_response_is_used_only_once_validated(tmp_path, ocsp):
    reacting, _ = _reactions(tmp_path, CertificateNodes({"lb1": {"shop": {"shop": {**LATER, "ocsp": ocsp}}}}))
    assert reacting.check_certificates()["ocsp_stale"] == [] and _ocsp_warnings(reacting) == []
