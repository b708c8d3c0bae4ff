"""Redaction: no token or password reaches an audit sink.

Two rules, applied to every string in a record's ``reason`` and ``data``:

- a value under a key that names a secret (``password``, ``token``,
  ``secret``, ``authorization``, ``api_key``, ``cookie``, ...) is replaced
  whole by ``[REDACTED]``, whatever its type;
- any other text keeps its meaning but loses what looks secret: JWTs (three
  base64url segments starting ``eyJ``), the password of ``scheme://user:pass@``
  URLs, ``password=...``/``token=...`` pairs of connection strings and query
  strings, ``Bearer``/``Basic`` credentials, AWS signatures and session
  tokens, and the string literal after SQL ``PASSWORD`` / ``IDENTIFIED BY``.

A statement that sets a password through a bind parameter (``PASSWORD $1``)
gets that parameter redacted too. Redaction errs on the side of hiding more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlgate.audit.canonical import MAX_SAFE_INT, CanonicalDict, Slow, plain_number, plain_other, plain_text

REDACTED = "[REDACTED]"

_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "api-key",
    "private_key",
    "privatekey",
    "cookie",
    "credential",
    "session_key",
)

# Cheap first look (substring tests on the lower-cased text beat one case-insensitive regex
# by several times): a string containing none of these is returned as it is.
_MARKERS = (
    "eyj",
    "://",
    "pass",
    "pwd",
    "secret",
    "token",
    "signature",
    "credential",
    "api_key",
    "apikey",
    "api-key",
    "bearer",
    "basic",
    "identified",
)
_TEXT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@]*@"), rf"\1{REDACTED}@"),
    (
        re.compile(
            r"(\b(?:PASSWORD|IDENTIFIED(?:\s+WITH\s+\w+)?\s+BY)\s+)"
            r"(?:E?'(?:[^']|'')*'|\$(\w*)\$.*?\$\2\$|\"(?:[^\"]|\"\")*\")",
            re.IGNORECASE | re.DOTALL,
        ),
        rf"\1'{REDACTED}'",
    ),
    (
        re.compile(
            r"(\b[\w-]*(?:password|passwd|pwd|passphrase|secret|token|api_?key|signature|credential)"
            r"(?:\s*=|[\"']\s*:)\s*)"
            r"(?:\"[^\"]*\"|'[^']*'|[^\s;&,\"')]+)",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1{REDACTED}"),
)
_PASSWORD_PARAM = re.compile(r"\b(?:PASSWORD|IDENTIFIED(?:\s+WITH\s+\w+)?\s+BY)\s+\$(\d+)", re.IGNORECASE)
_key_cache: dict[str, bool] = {}
# Short texts recur (command tags, outcomes, prepared statements' SQL): their redaction is remembered.
_clean_texts: set[str] = set()
_TEXT_CACHE_SIZE = 4096
_MAX_REMEMBERED = 512


def is_secret_key(key: str) -> bool:
    """True when a value stored under ``key`` is a secret by its name."""
    known = _key_cache.get(key)
    if known is None:
        lowered = key.lower()
        known = any(part in lowered for part in _SECRET_KEY_PARTS)
        if len(_key_cache) < 10_000:
            _key_cache[key] = known
    return known


def redact_text(text: str) -> str:
    """``text`` with tokens, passwords and signatures replaced by ``[REDACTED]``."""
    return text if text in _clean_texts else _redact_text(text)


def _clean_text(text: str) -> str:
    """``text`` redacted and UTF-8-safe; texts with nothing to change are remembered (no secret is)."""
    if text in _clean_texts:
        return text
    clean = plain_text(_redact_text(text))
    if clean == text and len(text) <= _MAX_REMEMBERED:
        if len(_clean_texts) >= _TEXT_CACHE_SIZE:
            _clean_texts.clear()  # cheaper than LRU bookkeeping; the common texts come right back
        _clean_texts.add(text)
    return clean


def _redact_text(text: str) -> str:
    lowered = text.lower()
    for marker in _MARKERS:
        if marker in lowered:
            break
    else:
        return text
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """``value`` (any JSON-like structure) with every secret removed, as plain JSON values; the input is not changed."""
    return _clean(value, Slow())


def redact_data(data: Mapping[Any, Any]) -> dict[str, Any]:
    """An event's ``data``, redacted and made plain JSON in one pass.

    The copy is a :class:`~sqlgate.audit.canonical.CanonicalDict` (its keys
    sorted at every level) unless something in it needs the reference encoder.
    """
    slow = Slow()
    clean = _clean_mapping(data, slow)
    return clean if slow.needed else CanonicalDict(clean)


def _clean(value: Any, slow: Slow) -> Any:  # noqa: PLR0911 - one branch per JSON type reads best
    kind = type(value)
    if kind is str:
        return _clean_text(value)
    if value is None or kind is bool:
        return value
    if kind is int:
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if kind is float:
        return plain_number(value, slow)
    if kind is list or kind is tuple or isinstance(value, list | tuple | set | frozenset):
        return [_clean_text(item) if type(item) is str else _clean(item, slow) for item in value]
    if isinstance(value, Mapping):
        return _clean_mapping(value, slow)
    return _clean(plain_other(value), slow)


def _clean_mapping(value: Mapping[Any, Any], slow: Slow) -> dict[str, Any]:
    try:
        names = sorted(value)
        usual = "".join(names).isascii()  # TypeError when a key is not text
    except TypeError:
        usual = False
    if not usual:
        return _clean_unusual_mapping(value, slow)
    cache = _key_cache
    out = {}
    for name in names:
        secret = cache.get(name)
        if secret is None:
            secret = is_secret_key(name)
        if secret:
            out[name] = REDACTED
        else:
            item = value[name]
            out[name] = _clean_text(item) if type(item) is str else _clean(item, slow)
    if "params" in out:
        _redact_password_params(out)
    return out


def _clean_unusual_mapping(value: Mapping[Any, Any], slow: Slow) -> dict[str, Any]:
    """A mapping with keys that are not text, or not ASCII: their text, sorted by the reference encoder."""
    named = {}
    for key, item in value.items():
        name = key if type(key) is str else str(key)
        if not name.isascii():
            slow.needed = True  # RFC 8785 orders such keys by UTF-16 code units: the reference encoder sorts
            name = plain_text(name)
        named[name] = item
    return _clean_mapping(named, slow) if not slow.needed else _clean_named(named, slow)


def _clean_named(named: dict[str, Any], slow: Slow) -> dict[str, Any]:
    out = {name: REDACTED if is_secret_key(name) else _clean(named[name], slow) for name in sorted(named)}
    if "params" in out:
        _redact_password_params(out)
    return out


def _redact_password_params(data: dict[Any, Any]) -> None:
    """``ALTER ROLE x PASSWORD $1`` with params: the first parameter is the password."""
    params = data.get("params")
    if type(params) is not list or not params:
        return
    for key in ("sql", "statement", "query"):
        sql = data.get(key)
        if type(sql) is not str:
            continue
        lowered = sql.lower()
        if "pass" in lowered or "identified" in lowered:
            for match in _PASSWORD_PARAM.finditer(sql):
                index = int(match.group(1)) - 1
                if 0 <= index < len(params):
                    params[index] = REDACTED


def redact(record: dict[str, Any]) -> dict[str, Any]:
    """Processor: redact a record's ``reason`` and ``data`` (other fields are names and ids)."""
    reason = record.get("reason")
    if type(reason) is str or isinstance(reason, str):
        record["reason"] = redact_text(reason)
    data = record.get("data")
    if type(data) is dict or isinstance(data, Mapping):
        record["data"] = redact_data(data)
    elif data is not None:
        record["data"] = redact_value(data)
    return record
