"""
How keepalived 2.2.7 reads a line of keepalived.conf, as lbpair applies it to the values it writes there.

keepalived reads its configuration before it looks at a keyword: it drops comments, expands
definitions, follows includes and conditions, and splits lines at braces (``read_line()``,
``decomment()`` and ``alloc_strvec_r()`` in lib/parser.c; scripts are split again by
``alloc_strvec_quoted_escaped()`` and run by lib/notify.c). A value lbpair checks as text could
be read otherwise. lbpair does not re-implement that reader: a value has no use for the
characters keepalived treats specially, so lbpair refuses them, and what is left is read exactly
as written (words separated by spaces).

The rules, each seen with the real ``keepalived -t -f FILE`` (Debian's 2.2.7) and the
configuration it dumps (``-d``):

- A line is what ``fgets()`` reads into 1024 bytes: the first 1023 bytes, indentation included, are
  one line and the rest is read as a line of its own (``router_id a...a`` padded to 1023 bytes and
  followed by ``router_id evil`` gives router ID ``evil``).
- ``#`` and ``!`` start a comment anywhere outside double quotes, also in the middle of a word
  (``router_id evil#x`` and ``router_id evil!x`` give ``evil``); ``\\#`` and ``\\!`` are a literal
  ``#``/``!`` outside quotes; inside double quotes both are literal (``router_id "lb1#x"`` gives
  ``lb1#x``).
- Double quotes make one word of what they hold, keyword included (``"router_id" evil`` sets the
  router ID); a quote in the middle of a word splits it (``ev"i l"x`` gives ``ev``). Single quotes
  are plain text in a keyword's value (``router_id 'ev il'`` gives ``'ev``).
- ``{`` and ``}`` outside double quotes split the line wherever they are: ``x } vrrp_instance
  evil {`` closes the block and opens a new one.
- ``$NAME`` and ``${NAME}`` expand definitions anywhere in a line, inside quotes too, and the
  comment rules apply again afterwards. Built in: ``$_PWD`` (the working directory), ``$_INSTANCE``,
  ``$_RANDOM``, ``$_HASH`` (``#``: ``router_id lb1$_HASH x`` gives ``lb1``) and ``$_BANG``
  (``!``). A line starting ``$NAME=`` defines one (a definition may hold ``include ...``).
- A line starting ``@NAME`` is read only where keepalived's config id is NAME, ``@^NAME`` only
  where it is not (``@^nohost router_id evil`` sets the router ID); this also holds for the
  part of a line after a brace.
- A line starting ``~SEQ(...)`` or ``~LST(...)`` repeats the next line (``~SEQ(N, 98, 98)
  vrrp_instance E$N {`` defines ``E98``).
- ``include``, ``includer``, ``includem``, ``includew``, ``includeb`` and ``includea`` at the start
  of a line include files (a glob), wherever the line is: ``includer FILE`` inside
  ``global_defs`` reads FILE there. ``include`` and ``includer`` of a missing file only warn (rc 0).
- A backslash at the end of a line continues a ``$NAME=`` definition only; elsewhere it stays.
- A script (``vrrp_script``'s ``script "..."``) is split once more: single and double quotes group
  words, and backslash escapes are decoded at both levels (``\\x41`` is ``A``, ``\\n`` splits a
  word). keepalived runs the words directly (execve), except a script starting with ``</`` (a
  test that a file opens): that one goes to ``/bin/sh`` as written, so
  ``</dev/null;/usr/bin/touch /tmp/x`` runs touch. Inside the double quotes lbpair writes around
  a script, ``#`` and ``!`` are literal (``/usr/bin/test ! -e FILE`` runs as written).
  ``global_defs``' ``startup_script``, ``shutdown_script`` and ``*notify_fifo_script`` take the
  program as their first word (quoted to have arguments) and a user as the second.
"""

import re

from saltext.lbpair.core.errors import printable

#: ``fgets()`` into keepalived's 1024-byte buffer: a longer line is read as two
MAX_LINE_BYTES = 1023
#: lbpair indents a line by at most two levels (a block inside a block) of four spaces
INDENT_BYTES = 8
#: the keyword and quotes around a script: ``script "..."``
SCRIPT_LINE = 'script "{}"'
#: keepalived's include directives (``include`` and its checked variants), read at a line's start
INCLUDE_RE = re.compile(r"include[rmwba]?")
_COMMENT = "keepalived starts a comment there (anywhere in a line, also inside a word) and drops the rest of the line"
_BRACE = "keepalived reads braces as the start or end of a block wherever they are: it splits the line there"
#: characters keepalived reads specially anywhere, and why
SPECIAL = {
    "#": _COMMENT,
    "!": _COMMENT,
    "{": _BRACE,
    "}": _BRACE,
    '"': "keepalived reads double quotes as quoting (one word of what they hold, comments and braces in them ignored)",
    "'": "keepalived reads single quotes in a script as quoting (one argument of what they hold)",
    "\\": "keepalived reads a backslash as an escape (\\# and \\! in a line; \\x41, \\n and the like in a script, twice)",
    "$": "keepalived expands definitions there ($NAME, ${NAME}; its own $_HASH is '#', $_PWD the working directory)",
}
#: characters keepalived reads specially at a line's start (and so at a word's start, after a brace), and why
WORD_START = {
    "@": "keepalived reads '@NAME' and '@^NAME' at a line's start as a condition on the host's config id",
    "~": "keepalived reads '~SEQ(...)' and '~LST(...)' at a line's start as a sequence repeating the next line",
}
#: literal inside the double quotes lbpair writes around a script
LITERAL_IN_QUOTES = ("#", "!")


def value_problem(text, quoted=False):
    """
    Why keepalived would not read ``text`` as written, where lbpair writes it after a keyword
    (a value, a name, a path), or inside double quotes with ``quoted`` (a script): a message, or
    None. What passes has printable ASCII only, none of :data:`SPECIAL` and no word starting
    with one of :data:`WORD_START`: keepalived reads it as its words separated by spaces.
    """
    if not isinstance(text, str):
        return "expected a string"
    bad = next((character for character in text if not " " <= character <= "~"), None)
    if bad is not None:
        return f"must be printable ASCII on one line, got '{printable(bad)}'"
    special = next((char for char in text if char in SPECIAL and not (quoted and char in LITERAL_IN_QUOTES)), None)
    if special is not None:
        return f"must not contain {special!r}: {SPECIAL[special]}"
    for word in text.split(" "):
        if word[:1] in WORD_START:
            return f"must not have a word starting with {word[0]!r}: {WORD_START[word[0]]}"
    return None


def line_problem(line):
    """
    Why keepalived would not read ``line`` (``keyword value``, written indented in a block) as
    that one directive: a special character, a length keepalived splits, or an include. None if
    it would.
    """
    problem = value_problem(line) or _length_problem(line)
    if problem:
        return problem
    first = line.split(" ", 1)[0]
    if INCLUDE_RE.fullmatch(first):
        return f"must not include other files ('{first}' is one of keepalived's include directives)"
    return None


def script_problem(script):
    """
    Why keepalived would not run ``script`` (written ``script "..."``) as its words, the first
    the program: a special character, a length keepalived splits, or a first word that is not
    an absolute path (a script starting ``<`` goes to /bin/sh as written). None if it would.
    """
    problem = value_problem(script, quoted=True) or _length_problem(SCRIPT_LINE.format(script))
    if problem:
        return problem
    if not script.startswith("/"):
        return (
            "must start with the program's absolute path (/usr/bin/...): keepalived runs a script starting "
            "with '<' through /bin/sh as written, and looks a bare name up in its own PATH"
        )
    return None


def _length_problem(line):
    size = len(line.encode()) + INDENT_BYTES
    if size > MAX_LINE_BYTES:
        return (
            f"makes a line of {size} bytes with its keyword and indentation: keepalived reads at most "
            f"{MAX_LINE_BYTES} bytes a line and the rest as a directive of its own"
        )
    return None
