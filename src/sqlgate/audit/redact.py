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
    """``value`` (any JSON-like structure) with every secret removed; the input is not changed."""
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, Mapping):
        return _redact_mapping(value)
    if isinstance(value, list | tuple):
        return [redact_text(item) if type(item) is str else redact_value(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redact_mapping(value: Mapping[Any, Any]) -> dict[Any, Any]:
    cache = _key_cache
    out = {}
    for key, item in _in_order(value):
        secret = cache.get(key)
        if secret is None:
            secret = isinstance(key, str) and is_secret_key(key)
        out[key] = REDACTED if secret else redact_value(item)
    if "params" in out:
        _redact_password_params(out)
    return out


def _in_order(value: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """Items sorted by key when the keys can be compared (canonical JSON then needs no re-sort)."""
    try:
        return sorted(value.items())  # keys are unique, so values are never compared
    except TypeError:
        return list(value.items())


def _redact_password_params(data: dict[Any, Any]) -> None:
    """``ALTER ROLE x PASSWORD $1`` with params: the first parameter is the password."""
    params = data.get("params")
    if not isinstance(params, list) or not params:
        return
    for key in ("sql", "statement", "query"):
        sql = data.get(key)
        if isinstance(sql, str) and ("pass" in sql.lower() or "identified" in sql.lower()):
            for match in _PASSWORD_PARAM.finditer(sql):
                index = int(match.group(1)) - 1
                if 0 <= index < len(params):
                    params[index] = REDACTED


def redact(record: dict[str, Any]) -> dict[str, Any]:
    """Processor: redact a record's ``reason`` and ``data`` (other fields are names and ids)."""
    reason = record.get("reason")
    if isinstance(reason, str):
        record["reason"] = redact_text(reason)
    data = record.get("data")
    if data:
        record["data"] = redact_value(data)
    return record
