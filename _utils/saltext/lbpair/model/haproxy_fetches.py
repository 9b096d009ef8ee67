"""
The sample expressions a service entry may write (HAProxy 2.6 manual, 7.3): a fetch and its
converters, each from an allow-list, in conditions, ``balance hash`` and log-format ``%[...]``.

A fetch reads the connection, its TLS or the HTTP message; a converter is a pure function of the
sample. Nothing reads the process, tables, variables, other proxies, files, Lua or the environment.
An expression that is refused raises :class:`LineProblem`, the service sandbox's refusal
(:mod:`saltext.lbpair.model.haproxy_allow` raises it for every other check too).

.. code-block:: yaml

    lbpair:
      services:
        shop:
          options:
            - acl api path_beg /api
            - http-request set-header X-Host %[req.hdr(host),lower]
            - http-request deny if { req.hdr(host),lower -m str admin.example.com } !api
"""

import re

ASK = "see 'What a service entry may set' in lbpair's docs/security.md; ask lbpair's maintainers to add it to the allow-list"
#: a sample expression: ``fetch[(args)][,converter[(args)]]...``
SAMPLE_NAME_RE = re.compile(r"[A-Za-z0-9_.+-]+")
SAMPLE_RE = re.compile(r"\s*[A-Za-z0-9_.+-]+(\s*,\s*[A-Za-z0-9_.+-]+)*\s*")
#: the sample fetches a service may read (HAProxy 2.6 manual, 7.3.2-7.3.6): the connection, its TLS
#: and the HTTP message. Not the process, tables, variables, other proxies, files, Lua or the environment.
SAMPLE_FETCHES = frozenset(
    """
    always_false always_true bool int ipv4 ipv6 meth str rand uuid
    src src_port src_is_local dst dst_port dst_is_local
    ssl_fc ssl_fc_alpn ssl_fc_cipher ssl_fc_has_sni ssl_fc_is_resumed ssl_fc_protocol ssl_fc_sni ssl_fc_use_keysize
    base base32 base32+src baseq capture.req.hdr capture.req.method capture.req.uri capture.req.ver
    capture.res.hdr capture.res.ver cook cook_cnt cook_val hdr hdr_cnt hdr_ip hdr_val http_first_req method
    path pathq query req.cook req.cook_cnt req.cook_val req.fhdr req.fhdr_cnt req.hdr req.hdr_cnt req.hdr_ip
    req.hdr_val req.ver req_ver res.cook res.cook_cnt res.cook_val res.fhdr res.fhdr_cnt res.hdr res.hdr_cnt
    res.hdr_ip res.hdr_val res.ver resp_ver scook scook_cnt scook_val shdr shdr_cnt shdr_ip shdr_val status
    unique-id url url32 url32+src url_ip url_param url_port urlp urlp_val
    """.split()
)
#: the converters a service may apply (manual 7.3.1): pure functions of the sample
SAMPLE_CONVERTERS = frozenset(
    """
    add and b64dec base64 bool bytes cpl crc32 cut_crlf div djb2 even field hex hex2i htonl http_date json
    language length lower ltime ltrim mod mul neg not odd or regsub rtrim sdbm sha1 sha2 sub ub64dec ub64enc
    upper url_dec utime word wt6 xor xxh32 xxh64
    """.split()
)
#: an ACL's criterion may also be a fetch with a matching-method suffix (``path_beg``, ``hdr_dom``)
MATCH_SUFFIXES = ("_beg", "_dir", "_dom", "_end", "_len", "_reg", "_sub", "_found")


class LineProblem(ValueError):
    """Why a line is refused (the message), optionally naming the key to use instead."""


def sample_expression(expression):
    """A sample expression: a fetch of :data:`SAMPLE_FETCHES` and converters of :data:`SAMPLE_CONVERTERS`."""
    names = _without_arguments(expression)
    if not SAMPLE_RE.fullmatch(names):
        raise LineProblem(f"{expression!r} is not a sample expression (fetch[(args)][,converter[(args)]]...)")
    fetch, *converters = SAMPLE_NAME_RE.findall(names)
    if not _is_fetch(fetch):
        raise LineProblem(f"the sample fetch {fetch!r} is not allowed in a service ({ASK})")
    for name in converters:
        if name not in SAMPLE_CONVERTERS:
            raise LineProblem(f"the converter {name!r} is not allowed in a service ({ASK})")
    return expression


def _is_fetch(name):
    return name in SAMPLE_FETCHES or any(name.endswith(suffix) and name[: -len(suffix)] in SAMPLE_FETCHES for suffix in MATCH_SUFFIXES)


def _without_arguments(expression):
    """``expression`` with the parenthesised arguments emptied (a converter's argument is no name of its own)."""
    depth, kept = 0, []
    for character in expression:
        depth += character == "("
        if depth == 0:
            kept.append(character)
        depth -= character == ")" and depth > 0
    return "".join(kept)


def log_format(value):
    """A log-format string: each ``%[...]`` expression is a checked sample expression."""
    for expression in re.findall(r"%\[([^\]]*)\]", value):
        sample_expression(expression)
    if re.search(r"%\[(?![^\]]*\])", value):
        raise LineProblem(f"{value!r} has an unclosed %[")
    return value
