"""A cheap shape for everyday DML: its literals replaced by markers, without parsing.

Simple-protocol clients send their values inside the SQL text, so almost every
statement is new text; pglast's ``normalize`` gives the shared shape but parses
in full. :func:`literal_shape` gets the same sharing for the common case in a
few microseconds, and gives up (None) on anything it cannot read with
certainty, where the caller falls back to the parser.

It is deliberately narrow, so that two texts with one shape always parse to the
same tree up to the values of constants (which pglast's normalization would
also merge):

- one statement starting with SELECT, INSERT, UPDATE, DELETE, VALUES or WITH,
  optionally ended by ``;`` (every literal in these is a constant);
- no comments, no dollar quoting or ``$`` at all, no backslash (whose meaning
  depends on ``standard_conforming_strings``), no prefixed strings (``E'..'``,
  ``B'..'``, ``X'..'``, ``U&'..'``, ``N'..'``);
- string literals ``'..'`` (with ``''``) become ``?s``, numbers that do not
  touch a name become ``?n``; quoted identifiers and everything else are kept
  exactly as written.
"""

from __future__ import annotations

import re

_STARTS = ("select", "insert", "update", "delete", "values", "with")
_REFUSE = re.compile(r"--|/\*|\$|\\|;.")
_NUMBER_PATTERN = r"""(?<![\w.])(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?![\w.'"])"""
_NUMBER = re.compile(_NUMBER_PATTERN)
_TOKEN = re.compile(
    r"""(?P<string>'(?:[^']|'')*')"""
    r"""|(?P<ident>"(?:[^"]|"")*")"""
    rf"""|(?P<number>{_NUMBER_PATTERN})"""
    r"""|(?P<stray>['"])"""
)
_PREFIXED = re.compile(r"""[\w&]$""")


def literal_shape(sql: str) -> str | None:
    """``sql`` with its literals as ``?s``/``?n``, or None when the text is outside the narrow, certain subset."""
    head = sql.lstrip()[:6].lower()
    if not head.startswith(_STARTS) or _REFUSE.search(sql.rstrip()):
        return None
    if "'" not in sql and '"' not in sql:  # numbers only: one substitution in C
        return _NUMBER.sub("?n", sql)
    parts: list[str] = []
    last = 0
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup
        if kind == "stray":
            return None
        if kind == "ident":
            continue
        start = match.start()
        if kind == "string" and _PREFIXED.search(sql, max(0, start - 1), start):
            return None
        parts.append(sql[last:start])
        parts.append("?s" if kind == "string" else "?n")
        last = match.end()
    parts.append(sql[last:])
    return "".join(parts)
