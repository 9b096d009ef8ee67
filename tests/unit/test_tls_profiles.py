"""
Mozilla's TLS profiles in haproxy.cfg's global section, HSTS per service and the persistence cookie
of an HTTPS service: their schema, what is rendered, and hostile or mistaken inputs refused.
"""

import copy

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar, tls_profiles
from saltext.lbpair.node import haproxy
from tests.unit.test_routing import SHOP, section
from tests.unit.tls_ca import shared_ca

TLS_KEY = "lbpair:services:shop:tls"
#: Mozilla's generator (guideline 6.0, HAProxy 2.6, OpenSSL 3.0, intermediate), word for word
MOZILLA_INTERMEDIATE = [
    "ssl-default-bind-curves X25519:prime256v1:secp384r1",
    "ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
    "ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
    "ssl-default-bind-options prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets",
    "ssl-default-server-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
    "ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
    "ssl-default-server-options ssl-min-ver TLSv1.2 no-tls-tickets",
]


def shop_with_tls(seed_pillar, routed=True, **tls_changes):
    """The seed pillar with the shop (routed, or as one plain service) terminating TLS."""
    lbpair = copy.deepcopy(seed_pillar)
    shop = copy.deepcopy(SHOP)
    if not routed:
        shop = {"vip": shop["vip"], "port": 80, "mode": "http", **shop["backends"]["web"]}
    lbpair["services"]["shop"] = {**shop, "tls": {"certificates": {"shop": {"pem": shared_ca().shop}}, **tls_changes}}
    return lbpair


def rendered(lbpair):
    return haproxy.render_config(pillar.for_node(pillar.normalize(lbpair), "lb1"))


def tls_lines(text):
    return [line for line in section(text, "global") if line.startswith(("ssl-default-", "tune.ssl."))]


def hsts_lines(lines):
    return [line for line in lines if "Strict-Transport-Security" in line]


# --- the profiles -----------------------------------------------------------------


def test_intermediate_is_the_default_and_is_mozilla_s_word_for_word(seed_pillar):
    seed_pillar["haproxy"].pop("tls_profile", None)
    assert tls_lines(rendered(seed_pillar)) == MOZILLA_INTERMEDIATE
    seed_pillar["haproxy"]["tls_profile"] = "intermediate"
    assert tls_lines(rendered(seed_pillar)) == MOZILLA_INTERMEDIATE


def test_modern_is_tls_1_3_only_with_no_tls_1_2_cipher_list(seed_pillar):
    seed_pillar["haproxy"]["tls_profile"] = "modern"
    lines = tls_lines(rendered(seed_pillar))
    assert not [line for line in lines if line.startswith(("ssl-default-bind-ciphers ", "ssl-default-server-ciphers "))]
    assert "ssl-default-bind-options prefer-client-ciphers ssl-min-ver TLSv1.3 no-tls-tickets" in lines
    assert "ssl-default-server-options ssl-min-ver TLSv1.3 no-tls-tickets" in lines


def test_old_opens_tls_1_0_with_seclevel_0_server_order_and_a_dhe_group(seed_pillar):
    seed_pillar["haproxy"]["tls_profile"] = "old"
    lines = tls_lines(rendered(seed_pillar))
    ciphers = next(line for line in lines if line.startswith("ssl-default-bind-ciphers "))
    assert ciphers.startswith("ssl-default-bind-ciphers @SECLEVEL=0:ECDHE-ECDSA-AES128-GCM-SHA256:") and ciphers.endswith(":DES-CBC3-SHA")
    assert "ssl-default-bind-options ssl-min-ver TLSv1.0 no-tls-tickets" in lines  # the server's cipher order
    assert lines[-1] == "tune.ssl.default-dh-param 2048"


@pytest.mark.parametrize("profile", list(tls_profiles.PROFILES))
def test_every_profile_names_its_key_and_keeps_the_server_side_free_of_bind_only_options(seed_pillar, profile):
    seed_pillar["haproxy"]["tls_profile"] = profile
    lines = haproxy.render_lines(pillar.for_node(pillar.normalize(seed_pillar), "lb1"))
    keyed = {line.strip(): key for line, key in lines if line.strip().startswith(("ssl-default-", "tune.ssl."))}
    assert keyed and set(keyed.values()) == {"lbpair:haproxy:tls_profile"}
    assert not [line for line in keyed if line.startswith("ssl-default-server-options") and "prefer-client-ciphers" in line]
    assert "ssl-default-server-curves" not in " ".join(keyed)  # HAProxy 2.9 and later only


def test_other_global_overrides_still_pass_beside_the_profile(seed_pillar):
    seed_pillar["haproxy"]["global"] = {"maxconn": 4000, "tune.ssl.cachesize": 20000}
    global_lines = section(rendered(seed_pillar), "global")
    assert "maxconn 4000" in global_lines and "tune.ssl.cachesize 20000" in global_lines
    assert MOZILLA_INTERMEDIATE[0] in global_lines


# --- HSTS -------------------------------------------------------------------------


def test_hsts_is_on_by_default_for_tls_answers_only(seed_pillar):
    lines = section(rendered(shop_with_tls(seed_pillar)), "frontend shop")
    assert hsts_lines(lines) == ['http-after-response set-header Strict-Transport-Security "max-age=63072000" if { ssl_fc }']


@pytest.mark.parametrize("hsts", [True, None, {}])
def test_true_null_and_an_empty_mapping_are_the_default(seed_pillar, hsts):
    model = pillar.normalize(shop_with_tls(seed_pillar, hsts=hsts))
    assert model["services"]["shop"]["tls"]["hsts"] == {"max_age": 63072000, "include_subdomains": False, "preload": False}


def test_hsts_with_subdomains_and_preload(seed_pillar):
    lbpair = shop_with_tls(seed_pillar, hsts={"max_age": 31536000, "include_subdomains": True, "preload": True})
    (line,) = hsts_lines(section(rendered(lbpair), "frontend shop"))
    assert '"max-age=31536000; includeSubDomains; preload" if { ssl_fc }' in line


def test_max_age_0_is_how_a_site_undoes_hsts(seed_pillar):
    (line,) = hsts_lines(section(rendered(shop_with_tls(seed_pillar, hsts={"max_age": 0})), "frontend shop"))
    assert '"max-age=0"' in line


def test_hsts_false_sends_none_and_a_service_without_tls_none_either(seed_pillar):
    assert not hsts_lines(section(rendered(shop_with_tls(seed_pillar, hsts=False)), "frontend shop"))
    assert "Strict-Transport-Security" not in rendered(seed_pillar)


def test_a_plain_service_with_tls_gets_hsts_in_its_listen_section(seed_pillar):
    lines = section(rendered(shop_with_tls(seed_pillar, routed=False, redirect_http=False)), "listen shop")
    assert len(hsts_lines(lines)) == 1


# --- the persistence cookie ---------------------------------------------------------


def test_the_cookie_of_an_https_service_is_secure_and_httponly_in_its_backends(seed_pillar):
    text = rendered(shop_with_tls(seed_pillar))
    assert "cookie web-id insert indirect nocache secure httponly" in section(text, "backend shop.web")


def test_a_plain_service_with_tls_too_even_when_it_serves_plain_http_beside_it(seed_pillar):
    lines = section(rendered(shop_with_tls(seed_pillar, routed=False, redirect_http=False)), "listen shop")
    assert "cookie web-id insert indirect nocache secure httponly" in lines


def test_a_cookie_without_tls_is_unchanged(seed_pillar):
    assert "cookie foo-server-id insert indirect nocache" in section(rendered(seed_pillar), "listen foo")


# --- hostile or mistaken inputs -----------------------------------------------------


def _global(lbpair, overrides):
    lbpair["haproxy"]["global"] = overrides


def _hsts(lbpair, value):
    lbpair["services"]["shop"]["tls"]["hsts"] = value


ROWS = [
    # (what it tries, the change, the pillar key named, words of the message)
    ("a profile that does not exist", lambda p: p["haproxy"].update(tls_profile="legacy"),
     "lbpair:haproxy:tls_profile", "expected one of modern, intermediate, old"),
    ("a profile given as a list", lambda p: p["haproxy"].update(tls_profile=["old", "modern"]),
     "lbpair:haproxy:tls_profile", "expected one of"),
    ("RC4 back through the global overrides", lambda p: _global(p, {"ssl-default-bind-ciphers": "RC4-SHA"}),
     "lbpair:haproxy:global:ssl-default-bind-ciphers", "lbpair:haproxy:tls_profile"),
    ("TLS 1.0 back through the options", lambda p: _global(p, {"ssl-default-bind-options": "ssl-min-ver TLSv1.0"}),
     "lbpair:haproxy:global:ssl-default-bind-options", "lbpair:haproxy:tls_profile"),
    ("dropping the profile's line with null", lambda p: _global(p, {"ssl-default-bind-options": None}),
     "lbpair:haproxy:global:ssl-default-bind-options", "lbpair:haproxy:tls_profile"),
    ("the keyword as the first of two words", lambda p: _global(p, {"ssl-default-server-ciphers x": "y"}),
     "lbpair:haproxy:global:ssl-default-server-ciphers x", "lbpair:haproxy:tls_profile"),
    ("a keyword lbpair does not render today", lambda p: _global(p, {"ssl-default-bind-sigalgs": "RSA+SHA1"}),
     "lbpair:haproxy:global:ssl-default-bind-sigalgs", "lbpair:haproxy:tls_profile"),
    ("a weak DHE group", lambda p: _global(p, {"tune.ssl.default-dh-param": 1024}),
     "lbpair:haproxy:global:tune.ssl.default-dh-param", "lbpair:haproxy:tls_profile"),
    ("the keyword in quotes (HAProxy drops them)", lambda p: _global(p, {"'ssl-default-bind-ciphers'": "RC4-SHA"}),
     "lbpair:haproxy:global:'ssl-default-bind-ciphers'", "directive keyword"),
    ("a line break in the value adds a cipher line", lambda p: _global(p, {"maxconn": "1\n    ssl-default-bind-ciphers RC4"}),
     "lbpair:haproxy:global:maxconn", "single line"),
    ("a max-age as text", lambda p: _hsts(p, {"max_age": "63072000"}),
     f"{TLS_KEY}:hsts:max_age", "expected an integer"),
    ("a max-age that ends the header and adds a directive", lambda p: _hsts(p, {"max_age": '1" if TRUE\n    http-request deny'}),
     f"{TLS_KEY}:hsts:max_age", "expected an integer"),
    ("a negative max-age", lambda p: _hsts(p, {"max_age": -1}), f"{TLS_KEY}:hsts:max_age", "from 0 to 315360000"),
    ("a max-age in milliseconds", lambda p: _hsts(p, {"max_age": 63072000000}), f"{TLS_KEY}:hsts:max_age", "from 0 to"),
    ("a max-age of true", lambda p: _hsts(p, {"max_age": True}), f"{TLS_KEY}:hsts:max_age", "expected an integer"),
    ("hsts as text", lambda p: _hsts(p, "off"), f"{TLS_KEY}:hsts", "expected true, false or a mapping"),
    ("hsts as 0 (not false)", lambda p: _hsts(p, 0), f"{TLS_KEY}:hsts", "expected true, false or a mapping"),
    ("the header's own spelling as a key", lambda p: _hsts(p, {"includeSubDomains": True}),
     f"{TLS_KEY}:hsts:includeSubDomains", "unknown key"),
    ("include_subdomains as text", lambda p: _hsts(p, {"include_subdomains": "yes"}),
     f"{TLS_KEY}:hsts:include_subdomains", "expected true or false"),
    ("preload without the subdomains", lambda p: _hsts(p, {"preload": True}),
     f"{TLS_KEY}:hsts:preload", "include_subdomains: true"),
    ("preload with a short max-age", lambda p: _hsts(p, {"preload": True, "include_subdomains": True, "max_age": 300}),
     f"{TLS_KEY}:hsts:preload", "max_age 31536000 or more"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "path", "words"), ROWS, ids=[row[0] for row in ROWS])
def test_hostile_or_mistaken_input_is_refused_naming_the_key(seed_pillar, what, change, path, words):
    lbpair = shop_with_tls(seed_pillar)
    change(lbpair)
    with pytest.raises(InvalidValue) as raised:
        pillar.normalize(lbpair)
    assert raised.value.path == path, what
    assert words in str(raised.value), what
