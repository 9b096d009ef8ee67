"""TLS termination: the tls block's schema, its rendering, the certificates' files named by content, no key ever shown."""

import copy
import hashlib
import os
import stat

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar
from saltext.lbpair.node import deploy, haproxy, tls_files
from tests.unit.test_routing import SHOP, section
from tests.unit.tls_ca import shared_ca

CERTS = "/etc/haproxy/certs/lbpair"
API_PATH = "/etc/haproxy/certs/api.pem"


@pytest.fixture
def ca():
    return shared_ca()


def file_name(bundle):
    return f"{hashlib.sha256(bundle.encode()).hexdigest()}.pem"


def shop_tls(ca, **changes):
    return {"redirect_http": True, "certificates": {"shop": {"pem": ca.shop}, "api": {"path": API_PATH}}, **changes}


def with_tls(seed_pillar, ca, service="shop", **changes):
    lbpair = copy.deepcopy(seed_pillar)
    lbpair["services"]["shop"] = copy.deepcopy(SHOP)
    lbpair["services"][service]["tls"] = shop_tls(ca, **changes)
    return lbpair


def model_of(lbpair):
    return pillar.for_node(pillar.normalize(lbpair), "lb1")


def rendered(lbpair, certificate_dir=CERTS):
    return haproxy.render_config(model_of(lbpair), certificate_dir)


# --- rendering ------------------------------------------------------------------


def test_a_routed_service_gets_a_tls_bind_naming_its_certificates_files_and_redirects_http(seed_pillar, ca):
    text = rendered(with_tls(seed_pillar, ca))
    assert section(text, "frontend shop")[:5] == [
        "bind 203.0.113.50:80",
        f"bind 203.0.113.50:443 ssl crt {CERTS}/{file_name(ca.shop)} crt {API_PATH} alpn h2,http/1.1",
        "mode http",
        "http-request redirect prefix https://shop.example.net code 301 if { req.hdr(host),field(1,:) -i www.shop.example.net }",
        "http-request redirect scheme https code 301 unless { ssl_fc }",
    ]


def test_a_plain_service_gets_its_tls_bind_in_its_listen_section(seed_pillar, ca):
    lbpair = copy.deepcopy(seed_pillar)
    lbpair["services"]["foo"]["tls"] = {"port": 8443, "alpn": ["http/1.1"], "certificates": {"foo": {"pem": ca.api}}}
    lines = section(rendered(lbpair), "listen foo")
    assert lines[:3] == ["bind 203.0.113.10:80", f"bind 203.0.113.10:8443 ssl crt {CERTS}/{file_name(ca.api)} alpn http/1.1", "mode http"]
    assert not any("redirect" in line for line in lines)


def test_without_redirect_http_host_redirects_keep_the_scheme(seed_pillar, ca):
    lines = section(rendered(with_tls(seed_pillar, ca, redirect_http=False, port=8443)), "frontend shop")
    host = "{ req.hdr(host),field(1,:) -i www.shop.example.net }"
    assert f"http-request redirect prefix http://shop.example.net code 301 if {host} !{{ ssl_fc }}" in lines
    assert f"http-request redirect prefix https://shop.example.net:8443 code 301 if {host} {{ ssl_fc }}" in lines
    assert not any("unless { ssl_fc }" in line for line in lines)


def test_http_is_redirected_to_a_tls_port_that_is_not_443_with_its_port(seed_pillar, ca):
    lines = section(rendered(with_tls(seed_pillar, ca, port=8443)), "frontend shop")
    assert "http-request redirect location https://%[req.hdr(host),regsub(:[0-9]+$,)]:8443%[pathq] code 301 unless { ssl_fc }" in lines


def test_services_without_tls_render_as_before(seed_pillar, ca):
    before = rendered(seed_pillar)
    text = rendered(with_tls(seed_pillar, ca))
    for title in ("listen foo", "listen bar", "listen baz"):
        assert section(text, title) == section(before, title)


def test_the_tls_lines_are_named_by_their_pillar_keys(seed_pillar, ca):
    lines = dict((line.strip(), key) for line, key in haproxy.render_lines(model_of(with_tls(seed_pillar, ca))))
    assert lines[f"bind 203.0.113.50:443 ssl crt {CERTS}/{file_name(ca.shop)} crt {API_PATH} alpn h2,http/1.1"] == (
        "lbpair:services:shop:tls:certificates"
    )
    assert lines["http-request redirect scheme https code 301 unless { ssl_fc }"] == "lbpair:services:shop:tls:redirect_http"


def test_the_first_certificate_stays_first(seed_pillar, ca):
    lbpair = with_tls(seed_pillar, ca)
    lbpair["services"]["shop"]["tls"]["certificates"] = {"api": {"path": API_PATH}, "shop": {"pem": ca.shop}}
    assert f"ssl crt {API_PATH} crt {CERTS}/" in rendered(lbpair)


# --- content-addressed files ----------------------------------------------------


def test_a_certificate_from_the_pillar_is_named_by_the_sha256_of_its_text(seed_pillar, ca):
    (certificate,) = [c for _s, _n, c in tls_files.each_certificate(model_of(with_tls(seed_pillar, ca))) if "bundle" in c]
    assert certificate["bundle"].file_name == file_name(ca.shop)
    renewed = with_tls(seed_pillar, ca)
    renewed["services"]["shop"]["tls"]["certificates"]["shop"]["pem"] = ca.renewed
    assert file_name(ca.renewed) in rendered(renewed) and file_name(ca.shop) not in rendered(renewed)


def test_a_bundle_without_a_final_newline_is_written_with_one(seed_pillar, ca):
    lbpair = with_tls(seed_pillar, ca)
    lbpair["services"]["shop"]["tls"]["certificates"]["shop"]["pem"] = ca.shop.rstrip("\n")
    assert tls_files.bundles(model_of(lbpair)) == {file_name(ca.shop): ca.shop}


def test_files_are_written_0600_in_a_0700_directory_and_only_when_missing(tmp_path, seed_pillar, ca):
    model = model_of(with_tls(seed_pillar, ca))
    directory = tmp_path / "certs" / "lbpair"
    written = tls_files.write(str(directory), model)
    assert written == [str(directory / file_name(ca.shop))]
    assert (directory / file_name(ca.shop)).read_text() == ca.shop
    assert stat.S_IMODE(os.stat(directory / file_name(ca.shop)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert tls_files.write(str(directory), model) == [] and tls_files.missing(str(directory), model) == []
    assert sorted(os.listdir(directory)) == [file_name(ca.shop)]  # no temporary file left


def test_a_damaged_file_is_missing_and_written_again(tmp_path, seed_pillar, ca):
    model = model_of(with_tls(seed_pillar, ca))
    tls_files.write(str(tmp_path), model)
    (tmp_path / file_name(ca.shop)).write_text("damaged")
    assert tls_files.write(str(tmp_path), model) == [str(tmp_path / file_name(ca.shop))]
    assert (tmp_path / file_name(ca.shop)).read_text() == ca.shop


def test_a_symlink_in_place_of_a_file_is_missing_and_replaced_by_the_file(tmp_path, seed_pillar, ca):
    model = model_of(with_tls(seed_pillar, ca))
    elsewhere = tmp_path / "elsewhere.pem"
    elsewhere.write_text(ca.shop)  # the same text, but not lbpair's root-only file
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / file_name(ca.shop)).symlink_to(elsewhere)
    assert tls_files.write(str(directory), model) == [str(directory / file_name(ca.shop))]
    assert not (directory / file_name(ca.shop)).is_symlink() and (directory / file_name(ca.shop)).read_text() == ca.shop


def test_prune_removes_only_the_certificate_files_no_longer_named(tmp_path, seed_pillar, ca):
    model = model_of(with_tls(seed_pillar, ca))
    tls_files.write(str(tmp_path), model)
    stale, other = tmp_path / file_name(ca.renewed), tmp_path / "operator-notes.txt"
    stale.write_text("old"), other.write_text("mine")
    assert tls_files.prune(str(tmp_path), model) == [file_name(ca.renewed)]
    assert sorted(os.listdir(tmp_path)) == sorted([file_name(ca.shop), "operator-notes.txt"])
    assert tls_files.prune(str(tmp_path / "nowhere"), model) == []


def test_the_certificate_directory_is_beside_haproxy_cfg():
    assert tls_files.directory_for("/etc/haproxy/haproxy.cfg") == CERTS


@pytest.fixture
def allowed(tmp_path, monkeypatch):
    """An allowed directory of certificates (in place of /etc/haproxy/certs...) and one outside."""
    inside, outside = tmp_path / "certs", tmp_path / "elsewhere"
    inside.mkdir(), outside.mkdir()
    monkeypatch.setattr(tls_files, "RESOLVED_DIRECTORIES", (str(inside),))
    return inside, outside


def test_a_symlink_leading_out_of_the_allowed_directories_is_refused(allowed):
    inside, outside = allowed
    (outside / "shadow").write_text("secret")
    (inside / "api.pem").symlink_to(outside / "shadow")
    with pytest.raises(InvalidValue, match="leads to .*elsewhere/shadow, which is not in") as error:
        tls_files.resolved(str(inside / "api.pem"), "lbpair:services:shop:tls:certificates:api:path")
    assert error.value.path == "lbpair:services:shop:tls:certificates:api:path"


def test_a_symlink_within_the_allowed_directories_is_followed(allowed, ca):
    inside, _outside = allowed
    (inside / "archive").mkdir()
    (inside / "archive" / "api1.pem").write_text(ca.api)
    (inside / "api.pem").symlink_to(inside / "archive" / "api1.pem")
    assert tls_files.read(str(inside / "api.pem"), "key")["names"] == ["api.shop.example.net"]


# --- the expiry report ----------------------------------------------------------


def test_the_report_describes_each_certificate_without_its_key(seed_pillar, ca, allowed):
    inside, _outside = allowed
    (inside / "api.pem").write_text(ca.api)
    lbpair = with_tls(seed_pillar, ca)
    lbpair["services"]["shop"]["tls"]["certificates"]["api"]["path"] = API_PATH
    model = model_of(lbpair)
    model["services"]["shop"]["tls"]["certificates"]["api"]["path"] = str(inside / "api.pem")
    report = tls_files.report(model, warn_days=100)
    shop, api = report["shop"]["shop"], report["shop"]["api"]
    assert shop["source"] == "pillar" and shop["names"] == ["shop.example.net", "www.shop.example.net"] and shop["days_left"] == 89
    assert shop["warning"] is True and api["source"] == str(inside / "api.pem") and api["names"] == ["api.shop.example.net"]
    assert not ca.shows_a_key(repr(report))


def test_a_certificate_file_that_is_missing_is_reported_as_an_error(seed_pillar, ca):
    report = tls_files.report(model_of(with_tls(seed_pillar, ca)), warn_days=30)
    assert report["shop"]["api"]["warning"] is True and "No such file" in report["shop"]["api"]["error"]


def test_the_report_refuses_a_warning_period_that_is_not_a_number_of_days(seed_pillar, ca):
    with pytest.raises(InvalidValue, match="warn_days"):
        tls_files.report(model_of(with_tls(seed_pillar, ca)), warn_days="soon")


# --- secrets --------------------------------------------------------------------


def test_no_line_of_a_key_appears_in_the_config_its_diff_or_the_model(seed_pillar, ca):
    lbpair = with_tls(seed_pillar, ca)
    text = rendered(lbpair)
    assert ca.shows_a_key(ca.shop) and not ca.shows_a_key(text)
    assert not ca.shows_a_key(deploy.unified_diff(rendered(seed_pillar), text, "/etc/haproxy/haproxy.cfg"))
    assert not ca.shows_a_key(repr(model_of(lbpair))) and not ca.shows_a_key(str(model_of(lbpair)))


# --- the schema -----------------------------------------------------------------

REFUSED = [
    # (what, the tls block or a change to the service, the key named, words of the message)
    ("tls in tcp mode", {"mode": "tcp", "redirects": None, "backends": None, "routes": None, "default_backend": None,
                         "servers": {"s1": {"address": "198.51.100.51", "port": 80}}}, "shop:tls", "needs mode http"),
    ("an unknown alpn value", {"alpn": ["h2", "spdy/3"]}, "shop:tls:alpn:1", "expected one of h2, http/1.1"),
    ("an empty alpn list", {"alpn": []}, "shop:tls:alpn", "a list of protocols"),
    ("a protocol twice", {"alpn": ["h2", "h2"]}, "shop:tls:alpn", "twice"),
    ("the plain port as tls port", {"port": 80}, "shop:tls:port", "plain HTTP port"),
    ("a tls port out of range", {"port": 70000}, "shop:tls:port", "from 1 to 65535"),
    ("redirect_http as text", {"redirect_http": "yes"}, "shop:tls:redirect_http", "true or false"),
    ("no certificate", {"certificates": {}}, "shop:tls:certificates", "at least one"),
    ("a certificate with pem and path", {"certificates": {"x": {"pem": "x", "path": API_PATH}}}, "shop:tls:certificates:x", "not both"),
    ("a certificate with neither", {"certificates": {"x": {}}}, "shop:tls:certificates:x", "either pem"),
    ("an unknown key", {"ciphers": "ALL"}, "shop:tls:ciphers", "unknown key"),
    ("a path outside the allowed directories", {"certificates": {"x": {"path": "/root/x.pem"}}},
     "shop:tls:certificates:x:path", "not in a directory"),
    ("a path in lbpair's own directory", {"certificates": {"x": {"path": f"{CERTS}/{'a' * 64}.pem"}}},
     "shop:tls:certificates:x:path", "lbpair's own"),
    ("the same path twice", {"certificates": {"x": {"path": API_PATH}, "y": {"path": API_PATH}}},
     "shop:tls:certificates:y", "same certificate as lbpair:services:shop:tls:certificates:x"),
    ("a pem that is not PEM", {"certificates": {"x": {"pem": "MIIBxyz"}}}, "shop:tls:certificates:x:pem", "not PEM"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "changes", "key", "words"), REFUSED, ids=[row[0] for row in REFUSED])
def test_a_bad_tls_block_is_refused_naming_the_key(seed_pillar, ca, what, changes, key, words):
    lbpair = with_tls(seed_pillar, ca)
    shop = lbpair["services"]["shop"]
    target = shop["tls"] if "mode" not in changes else shop
    target.update(changes)
    for name in [name for name, value in changes.items() if value is None]:
        shop.pop(name)
    with pytest.raises(InvalidValue, match=words) as refused:
        pillar.normalize(lbpair)
    assert refused.value.path == f"lbpair:services:{key}", what


def test_the_same_certificate_twice_is_refused(seed_pillar, ca):
    lbpair = with_tls(seed_pillar, ca, certificates={"shop": {"pem": ca.shop}, "again": {"pem": ca.shop.rstrip("\n")}})
    with pytest.raises(InvalidValue, match="same certificate as lbpair:services:shop:tls:certificates:shop") as refused:
        pillar.normalize(lbpair)
    assert refused.value.path == "lbpair:services:shop:tls:certificates:again"


def test_a_tls_port_another_service_binds_on_the_same_vip_is_refused(seed_pillar, ca):
    lbpair = with_tls(seed_pillar, ca)
    lbpair["services"]["cart"] = {**copy.deepcopy(seed_pillar["services"]["foo"]), "vip": "203.0.113.50", "port": 443}
    with pytest.raises(InvalidValue, match="203.0.113.50 port 443 is already used by service cart") as refused:
        pillar.normalize(lbpair)
    assert refused.value.path == "lbpair:services:shop:tls:port"


def test_a_bad_bundle_is_refused_without_showing_its_key(seed_pillar, ca):
    other = shared_ca().bundle("other.example.net")
    mismatched = ca.shop.split("-----BEGIN PRIVATE KEY-----")[0] + "-----BEGIN PRIVATE KEY-----" + other.split("-----BEGIN PRIVATE KEY-----")[1]
    lbpair = with_tls(seed_pillar, ca, certificates={"shop": {"pem": mismatched}})
    with pytest.raises(InvalidValue, match="does not belong") as refused:
        pillar.normalize(lbpair)
    assert refused.value.path == "lbpair:services:shop:tls:certificates:shop:pem"
    assert not ca.shows_a_key(str(refused.value))


def test_an_expired_certificate_leaves_the_pillar_valid_and_is_refused_when_haproxy_is_configured(tmp_path, seed_pillar, ca):
    """The day a certificate expires, keepalived, the firewall and the beacon still get their model."""
    lbpair = with_tls(seed_pillar, ca, certificates={"shop": {"pem": ca.bundle("shop.example.net", days=0)}})
    model = model_of(lbpair)
    files = tls_files.CertificateFiles(str(tmp_path / "certs"), haproxy.render_lines)
    for attempt in (files.write, lambda model: files.scratch_lines(model, str(tmp_path / "scratch"))):
        with pytest.raises(InvalidValue, match="expired") as refused:
            attempt(model)
        assert refused.value.path == "lbpair:services:shop:tls:certificates:shop:pem"
    assert not os.path.exists(tmp_path / "certs") and not os.path.exists(tmp_path / "scratch")


def test_the_backends_learn_whether_the_client_spoke_tls(seed_pillar, ca):
    front = section(rendered(with_tls(seed_pillar, ca)), "frontend shop")
    assert "http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]" in front
    assert not [line for line in section(rendered(seed_pillar), "listen foo") if "X-Forwarded-Proto" in line]
