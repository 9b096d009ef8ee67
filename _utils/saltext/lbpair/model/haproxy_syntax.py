"""
HAProxy 2.6's line tokenizer (``parse_line()`` in src/tools.c), as lbpair applies it to pillar text.

HAProxy removes quotes and backslash escapes and expands environment variables *before* it reads
a keyword: ``'listen' x`` and ``\\x6cisten x`` open a section. So lbpair never checks the raw
text: :func:`words` gives the words HAProxy will read (refusing what lbpair will not reason
about: ``$`` expansion, ``#`` comments, escapes that make control characters, unbalanced quotes,
empty words), and :func:`line` renders words canonically, so that ``words(line(w)) == w``.
lbpair renders the canonical line: what HAProxy reads is exactly what lbpair checked.

The rules (2.6): blanks separate words; ``'...'`` keeps everything literally (no escape, no
expansion); ``"..."`` and bare text honour ``\\`` escapes (``\\\\ \\' \\" \\# \\$ \\<space>``, ``\\r
\\n \\t``, ``\\xNN``) and expand ``$NAME``/``${NAME}``; an unquoted ``#`` starts a comment.
"""

import re

from saltext.lbpair.core.errors import InvalidValue

#: keywords that open a section of haproxy.cfg: a line starting with one would end the section it is in
HAPROXY_SECTIONS = (
    "global", "defaults", "frontend", "backend", "listen", "userlist", "peers", "resolvers", "mailers",
    "program", "http-errors", "ring", "cache", "log-forward", "fcgi-app", "crt-store", "traces",
)  # fmt: skip
#: no reason for a directive line to be longer (HAProxy's own limit is 2 KiB a line)
MAX_LINE_BYTES = 1024
#: words rendered bare: nothing the tokenizer treats specially
BARE_RE = re.compile(r"[A-Za-z0-9_.:/@%+=,!?*<>()\[\]{}~^|&;-]+")
_PRINTABLE = {chr(code) for code in range(0x20, 0x7F)}
_ESCAPED = {"\\": "\\", "'": "'", '"': '"', "#": "#", "$": "$", " ": " "}
_HEX = re.compile(r"[0-9A-Fa-f]{2}")


class SyntaxProblem(ValueError):
    """A line lbpair will not hand to HAProxy; the message says why."""


def _escape(text, index):
    """The character a backslash at ``text[index]`` makes, and the index after the escape."""
    following = text[index + 1 : index + 2]
    if following in _ESCAPED:
        return following, index + 2
    if following == "x" and _HEX.fullmatch(text[index + 2 : index + 4]):
        character = chr(int(text[index + 2 : index + 4], 16))
        if character not in _PRINTABLE:
            raise SyntaxProblem(f"the escape \\x{text[index + 2 : index + 4]} makes a control character")
        return character, index + 4
    if following in ("r", "n", "t"):
        raise SyntaxProblem(f"the escape \\{following} makes a control character")
    raise SyntaxProblem("a backslash must escape one of \\ ' \" # $ space, or be \\xNN")


def _quoted(text, index, quote):
    """The text of a quoted part starting after ``text[index]`` (``quote``), and the index after it."""
    result = []
    while index < len(text):
        character = text[index]
        if character == quote:
            return "".join(result), index + 1
        if quote == '"' and character == "\\":
            character, index = _escape(text, index)
            result.append(character)
            continue
        if quote == '"' and character == "$":
            raise SyntaxProblem("'$' expands an environment variable: escape it (\\$) or single-quote it")
        result.append(character)
        index += 1
    raise SyntaxProblem(f"an unbalanced {quote} quote")


def parse(text):
    """The words HAProxy reads in ``text``; raises :class:`SyntaxProblem` for what lbpair refuses."""
    if not isinstance(text, str):
        raise SyntaxProblem("expected a string")
    if len(text.encode()) > MAX_LINE_BYTES:
        raise SyntaxProblem(f"must be at most {MAX_LINE_BYTES} bytes long")
    bad = next((character for character in text if character not in _PRINTABLE and character != "\t"), None)
    if bad is not None:
        raise SyntaxProblem(f"must be printable ASCII on one line, got {bad!r}")
    words, current, started, index = [], [], False, 0
    while index < len(text):
        character = text[index]
        if character in " \t":
            if started:
                words.append("".join(current))
            current, started, index = [], False, index + 1
            continue
        started = True
        if character in "'\"":
            part, index = _quoted(text, index + 1, character)
            current.append(part)
        elif character == "\\":
            part, index = _escape(text, index)
            current.append(part)
        elif character == "#":
            raise SyntaxProblem("'#' starts a comment there: quote it or leave it out")
        elif character == "$":
            raise SyntaxProblem("'$' expands an environment variable: escape it (\\$) or single-quote it")
        else:
            current.append(character)
            index += 1
    if started:
        words.append("".join(current))
    if any(word == "" for word in words):
        raise SyntaxProblem("has an empty word ('' or \"\")")
    return words


def words(text, key):
    """The words HAProxy reads in ``text``, or :class:`InvalidValue` naming ``key``."""
    try:
        return parse(text)
    except SyntaxProblem as problem:
        raise InvalidValue(key, str(problem)) from None


def word(text):
    """One word as HAProxy reads it back: bare when only plain characters, else quoted."""
    if BARE_RE.fullmatch(text):
        return text
    if "'" not in text:
        return f"'{text}'"
    return '"' + re.sub(r'([\\"$])', r"\\\1", text) + '"'


def line(words_):
    """The canonical line of ``words_`` (non-empty printable words): ``parse(line(w)) == w``."""
    return " ".join(word(each) for each in words_)
