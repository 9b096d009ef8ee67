"""Routed services: backends picked by Host and path prefix, a canonical host, modelled health checks."""

import copy

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar
from saltext.lbpair.node import haproxy

SHOP = {
    "vip": "203.0.113.50",
    "port": 80,
    "redirects": {"www.shop.example.net": "shop.example.net"},
    "backends": {
        "web": {"cookie": "web-id", "servers": {"web1": {"address": "198.51.100.51", "port": 80}, "web2": {"address": "198.51.100.52", "port": 80}}},
        "api": {
            "balance": "leastconn",
            "health": {"path": "/health", "status": 204, "inter": 0.5, "fall": 2, "rise": 3},
            "servers": {"api1": {"address": "198.51.100.61", "port": 8080}},
        },
    },
    "routes": [
        {"host": "api.shop.example.net", "backend": "api"},
        {"host": "shop.example.net", "path": "/api/", "backend": "api"},
    ],
    "default_backend": "web",
}


def with_shop(seed_pillar, **changes):
    lbpair = copy.deepcopy(seed_pillar)
    lbpair["services"]["shop"] = {**copy.deepcopy(SHOP), **changes}
    return lbpair


def rendered(lbpair):
    return haproxy.render_config(pillar.for_node(pillar.normalize(lbpair), "lb1"))


def section(text, title):
    """The lines of one section of haproxy.cfg, without their indentation."""
    lines = text.split("\n")
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return [line.strip() for line in lines[start:end] if line.strip()]


#: sections of the shop's haproxy.cfg: a frontend with its routes in order, then the default;
#: each backend a section named after its service, with its health check
SHOP_SECTIONS = {
    "frontend shop": [
        "bind 203.0.113.50:80",
        "mode http",
        "http-request redirect prefix http://shop.example.net code 301 if { req.hdr(host),field(1,:) -i www.shop.example.net }",
        "use_backend shop.api if { req.hdr(host),field(1,:) -i api.shop.example.net }",
        "use_backend shop.api if { req.hdr(host),field(1,:) -i shop.example.net } { path_beg /api/ }",
        "default_backend shop.web",
    ],
    "backend shop.api": [
        "mode http",
        "balance leastconn",
        "option forwardfor",
        "option httpchk GET /health",
        "http-check expect status 204",
        "default-server inter 500ms fall 2 rise 3",
        "server api1 198.51.100.61:8080 check",
    ],
}


@pytest.mark.parametrize("title", SHOP_SECTIONS)
def test_a_routed_service_renders_a_frontend_and_a_backend_per_backend(seed_pillar, title):
    assert section(rendered(with_shop(seed_pillar)), title) == SHOP_SECTIONS[title]


def test_a_backend_keeps_its_cookie(seed_pillar):
    web = section(rendered(with_shop(seed_pillar)), "backend shop.web")
    assert "cookie web-id insert indirect nocache" in web
    assert "server web1 198.51.100.51:80 check cookie web1" in web


def test_the_seed_services_still_render_as_listen_sections(seed_pillar):
    text = rendered(with_shop(seed_pillar))
    assert rendered(seed_pillar) in text.replace(text[text.index("frontend shop") : text.index("frontend lbpair-probe")], "")


def test_a_plain_service_can_have_a_modelled_tcp_health_check(seed_pillar):
    seed_pillar["services"]["foo"].update(mode="tcp", health={"inter": 3, "fall": 4, "rise": 1})
    del seed_pillar["services"]["foo"]["cookie"]
    assert "default-server inter 3000ms fall 4 rise 1" in section(rendered(seed_pillar), "listen foo")


def test_one_backend_is_the_default_without_saying_so(seed_pillar):
    only_web = {"web": SHOP["backends"]["web"]}
    text = rendered(with_shop(seed_pillar, backends=only_web, routes=[], default_backend=None))
    assert "default_backend shop.web" in section(text, "frontend shop")


@pytest.mark.parametrize(
    ("what", "changes", "key", "words"),
    [
        ("servers beside backends", {"servers": {}}, "shop:servers", "either servers or backends"),
        ("routes without backends", {"backends": None}, "shop:routes", "only for a service with backends"),
        ("a route to an unknown backend", {"routes": [{"path": "/x", "backend": "nope"}]}, "shop:routes:0:backend", "no backend 'nope'"),
        ("a route that matches nothing in particular", {"routes": [{"backend": "api"}]}, "shop:routes:0", "host, a path prefix or both"),
        ("a route shadowed by a wider path", {"routes": [{"path": "/api", "backend": "api"}, {"path": "/api/v2", "backend": "web"}]},
         "shop:routes:1", "shadowed by lbpair:services:shop:routes:0"),
        ("a route shadowed by a host route", {"routes": [{"host": "a.example.net", "backend": "api"}, {"host": "a.example.net", "path": "/x", "backend": "web"}]},
         "shop:routes:1", "shadowed"),
        ("the same route twice", {"routes": [{"path": "/x", "backend": "api"}, {"path": "/x", "backend": "api"}]}, "shop:routes:1", "shadowed"),
        ("a default backend that does not exist", {"default_backend": "nope"}, "shop:default_backend", "no backend 'nope'"),
        ("two backends and no default", {"default_backend": None}, "shop:default_backend", "required with more than one backend"),
        ("a host with a port", {"routes": [{"host": "a.example.net:80", "backend": "api"}]}, "shop:routes:0:host", "a host name"),
        ("a path without its leading slash", {"routes": [{"path": "api", "backend": "api"}]}, "shop:routes:0:path", "starting with /"),
        ("routes in tcp mode", {"mode": "tcp", "redirects": None}, "shop:backends", "need mode http"),
        ("redirects in tcp mode", {"mode": "tcp"}, "shop:redirects", "need mode http"),
        ("a redirect loop", {"redirects": {"a.example.net": "b.example.net", "b.example.net": "a.example.net"}},
         "shop:redirects:a.example.net", "redirected itself"),
        ("a redirect to a bad host", {"redirects": {"a.example.net": "http://b.example.net/"}}, "shop:redirects:a.example.net", "a host name"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)  # fmt: skip
def test_bad_routing_is_refused_naming_the_key(seed_pillar, what, changes, key, words):
    shop = with_shop(seed_pillar, **changes)
    for name, value in changes.items():
        if value is None:
            shop["services"]["shop"].pop(name)
    with pytest.raises(InvalidValue, match=words) as refused:
        pillar.normalize(shop)
    assert refused.value.path == f"lbpair:services:{key}", what


def test_a_backend_named_like_another_service_is_refused(seed_pillar):
    lbpair = with_shop(seed_pillar)
    lbpair["services"]["shop.api"] = {**copy.deepcopy(seed_pillar["services"]["foo"]), "vip": "203.0.113.60"}
    with pytest.raises(InvalidValue, match="is the name of service shop.api") as refused:
        pillar.normalize(lbpair)
    assert refused.value.path == "lbpair:services:shop:backends:api"


def test_a_backend_named_like_another_services_backend_is_refused(seed_pillar):
    """Service ``shop`` + backend ``x.v2`` and service ``shop.x`` + backend ``v2`` are both HAProxy's ``shop.x.v2``."""
    lbpair = with_shop(seed_pillar)
    shop = lbpair["services"]["shop"]
    shop["backends"]["x.v2"] = copy.deepcopy(shop["backends"]["api"])
    other = copy.deepcopy(shop)
    other.update(vip="203.0.113.60", backends={"v2": copy.deepcopy(shop["backends"]["api"])}, default_backend="v2")
    other.pop("routes", None)
    lbpair["services"]["shop.x"] = other
    with pytest.raises(InvalidValue, match="is the name of a backend of service shop") as refused:
        pillar.normalize(lbpair)
    assert refused.value.path == "lbpair:services:shop.x:backends:v2"
