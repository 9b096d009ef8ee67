"""
``lbpair_haproxy.configured`` with TLS certificates from the pillar, through Salt's loader and
checked by the real ``haproxy -c``: the bundles are written 0600 under names of their content
before the check, a renewed one is a new file and the old one goes after the reload, a rejected
candidate leaves no new file, and no line of a private key is ever in a return.
"""

import os
import pathlib
import stat

import pytest

from saltext.lbpair.model import certificates as certificate_checks
from tests.functional.conftest import set_pillar
from tests.functional.test_configured import apply, live_text
from tests.unit.test_routing import SHOP
from tests.unit.test_tls import file_name
from tests.unit.tls_ca import shared_ca


@pytest.fixture
def ca():
    return shared_ca()


@pytest.fixture
def pillar(seed_pillar, ca):
    """The seed scenario with the routed shop terminating TLS with two certificates from the pillar."""
    seed_pillar["services"]["shop"] = {**SHOP, "tls": {"redirect_http": True, "certificates": {"shop": {"pem": ca.shop}, "api": {"pem": ca.api}}}}
    return seed_pillar


@pytest.fixture
def certs(live_dir):
    return live_dir / "haproxy" / "certs" / "lbpair"


@pytest.fixture
def keyless_on_node(ca):
    """
    A certificate without its key in a folder lbpair reads certificates from: lbpair checks a
    certificate on the node by its path only, and leaves its content to ``haproxy -c``.
    """
    folder = pathlib.Path(certificate_checks.ALLOWED_DIRECTORIES[1])
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"lbpair-functional-keyless-{os.getpid()}.pem"
    try:
        path.write_text(ca.api[: ca.api.index("-----BEGIN PRIVATE KEY-----")])
        yield str(path)
    finally:
        path.unlink(missing_ok=True)
        if created:
            folder.rmdir()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_no_key(ca, ret):
    assert not ca.shows_a_key(repr(vars(ret))), "a line of a private key is in the state's return"


def test_apply_writes_the_certificates_0600_and_shows_no_key(state_functions, modules, services, certs, ca):
    ret = apply(state_functions, "haproxy")
    assert ret.result is True, ret.comment
    assert sorted(os.listdir(certs)) == sorted([file_name(ca.shop), file_name(ca.api)])
    assert {mode(certs / name) for name in os.listdir(certs)} == {0o600} and mode(certs) == 0o700
    assert (certs / file_name(ca.shop)).read_text() == ca.shop
    assert f"crt {certs / file_name(ca.shop)} crt {certs / file_name(ca.api)}" in ret.changes["diff"]
    assert sorted(ret.changes["files"]["new"]) == sorted([file_name(ca.shop), file_name(ca.api)])
    assert live_text(modules, "haproxy") == modules.lbpair_haproxy.render()
    assert_no_key(ca, ret)
    assert services.calls == [("reload", "haproxy")]


def test_test_mode_checks_with_the_certificates_and_writes_none(state_functions, services, live_dir, ca):
    state_functions.opts["test"] = True
    ret = apply(state_functions, "haproxy")
    assert ret.result is None, ret.comment
    assert "accepts the new configuration" in ret.comment and "ssl crt " in ret.changes["diff"]
    assert not (live_dir / "haproxy").exists()
    assert_no_key(ca, ret)
    assert services.calls == []


def test_a_renewed_certificate_is_a_new_file_and_the_old_one_is_removed_after_the_reload(loaders, state_functions, pillar, services, certs, ca):
    assert apply(state_functions, "haproxy").result is True
    pillar["services"]["shop"]["tls"]["certificates"]["shop"]["pem"] = ca.renewed
    set_pillar(loaders, pillar)
    state_functions.opts["test"] = True
    predicted = apply(state_functions, "haproxy")
    assert predicted.result is None and file_name(ca.renewed) in predicted.changes["diff"]
    assert sorted(os.listdir(certs)) == sorted([file_name(ca.shop), file_name(ca.api)])
    state_functions.opts["test"] = False
    ret = apply(state_functions, "haproxy")
    assert ret.result is True, ret.comment
    assert ret.changes["files"] == {"new": [file_name(ca.renewed)], "removed": [file_name(ca.shop)]}
    assert sorted(os.listdir(certs)) == sorted([file_name(ca.renewed), file_name(ca.api)])
    assert_no_key(ca, predicted) and assert_no_key(ca, ret)
    assert services.calls == [("reload", "haproxy"), ("reload", "haproxy")]


def test_a_candidate_haproxy_refuses_leaves_no_new_file_and_the_live_ones_in_place(
    loaders, state_functions, modules, pillar, services, certs, ca, keyless_on_node
):
    assert apply(state_functions, "haproxy").result is True
    before, files_before = live_text(modules, "haproxy"), sorted(os.listdir(certs))
    certificates = pillar["services"]["shop"]["tls"]["certificates"]
    certificates["shop"]["pem"] = ca.renewed
    certificates["keyless"] = {"path": keyless_on_node}
    set_pillar(loaders, pillar)
    ret = apply(state_functions, "haproxy")
    assert ret.result is False
    assert "HAProxy rejected the configuration" in ret.comment and "lbpair:services:shop:tls:certificates (line " in ret.comment
    assert f"No Private Key found in '{keyless_on_node}.key'" in ret.comment
    assert live_text(modules, "haproxy") == before and sorted(os.listdir(certs)) == files_before
    assert_no_key(ca, ret)
    assert services.calls == [("reload", "haproxy")]


def test_a_failed_reload_restores_the_config_and_drops_the_new_file(loaders, state_functions, modules, pillar, certs, ca):
    assert apply(state_functions, "haproxy").result is True
    before, files_before = live_text(modules, "haproxy"), sorted(os.listdir(certs))
    pillar["services"]["shop"]["tls"]["certificates"]["shop"]["pem"] = ca.renewed
    set_pillar(loaders, pillar)
    modules["service.reload"] = lambda name, *args, **kwargs: False
    ret = apply(state_functions, "haproxy")
    assert ret.result is False and "restored" in ret.comment
    assert live_text(modules, "haproxy") == before and sorted(os.listdir(certs)) == files_before


def test_a_missing_certificate_file_is_put_back_without_a_reload(state_functions, services, certs, ca):
    assert apply(state_functions, "haproxy").result is True
    (certs / file_name(ca.api)).unlink()
    services.calls.clear()
    state_functions.opts["test"] = True
    predicted = apply(state_functions, "haproxy")
    assert predicted.result is None and predicted.changes == {"files": {"new": [file_name(ca.api)], "removed": []}}
    state_functions.opts["test"] = False
    ret = apply(state_functions, "haproxy")
    assert ret.result is True and ret.changes == {"files": {"new": [file_name(ca.api)], "removed": []}}
    assert (certs / file_name(ca.api)).read_text() == ca.api and services.calls == []


def test_validate_checks_the_certificates_in_a_scratch_directory(modules, live_dir):
    assert "error" not in modules.lbpair_haproxy.validate().lower()
    assert not (live_dir / "haproxy").exists()


def test_certificates_reports_names_and_expiry_without_keys(modules, ca):
    report = modules.lbpair_haproxy.certificates(warn_days=100)
    assert report["shop"]["api"]["names"] == ["api.shop.example.net"] and report["shop"]["api"]["source"] == "pillar"
    assert report["shop"]["shop"]["days_left"] == 89 and report["shop"]["shop"]["warning"] is True
    assert modules.lbpair_haproxy.certificates()["shop"]["shop"]["warning"] is False
    assert not ca.shows_a_key(repr(report))


def test_a_bad_bundle_is_refused_by_its_key_before_anything_is_written(loaders, state_functions, pillar, live_dir, ca):
    pillar["services"]["shop"]["tls"]["certificates"]["shop"]["pem"] = ca.shop.replace("-----END CERTIFICATE-----", "", 1)
    set_pillar(loaders, pillar)
    ret = apply(state_functions, "haproxy")
    assert ret.result is False and ret.comment.startswith("lbpair:services:shop:tls:certificates:shop:pem: ")
    assert not (live_dir / "haproxy").exists()
    assert_no_key(ca, ret)
