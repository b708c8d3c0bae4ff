"""Names of minted logins, the marker that says a login is ours, and SQL quoting.

A minted login is ``<prefix>_<name>_<12 hex>``: readable in ``pg_stat_activity``,
unique, and only made of ``[a-z0-9_]``. On PostgreSQL the role's comment carries
the marker ``sqlgate lease <lease id> for <principal>``, so the reaper can find
logins whose lease is gone and a DBA can see who a login belongs to.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

from sqlgate.identity.principal import Principal

MARKER_PREFIX = "sqlgate lease "
_MARKER = re.compile(r"^sqlgate lease ([0-9a-f]{32})(?: |$)")
_SUFFIX_HEX = 12


def login_name(prefix: str, principal: Principal, *, max_length: int = 63) -> str:
    """A fresh login name for ``principal``: prefix, a readable part of its name, a random suffix."""
    readable = _readable(principal.email.split("@", 1)[0] if principal.email else principal.name or "user")
    room = max_length - len(prefix) - _SUFFIX_HEX - 2
    if room < 1:
        raise ValueError(f"login_prefix {prefix!r} leaves no room for a name in {max_length} characters")
    return f"{prefix}_{readable[:room].strip('_') or 'u'}_{secrets.token_hex(_SUFFIX_HEX // 2)}"


def login_pattern(prefix: str) -> re.Pattern[str]:
    """Matches exactly the names :func:`login_name` makes with ``prefix``."""
    return re.compile(rf"^{re.escape(prefix)}_[a-z0-9_]+_[0-9a-f]{{{_SUFFIX_HEX}}}$")


def marker(lease_id: str, principal_key: str) -> str:
    """The comment put on a minted role (control characters removed, length bounded)."""
    who = "".join(ch for ch in principal_key if ch.isprintable())[:200]
    return f"{MARKER_PREFIX}{lease_id} for {who}"


def lease_id_of(comment: str | None) -> str | None:
    """The lease id in a marker comment, or None when the comment is not ours."""
    match = _MARKER.match(comment or "")
    return match.group(1) if match else None


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, double-quoted."""
    _refuse_nul(name)
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings is on since 9.1; backslashes are doubled by E'')."""
    _refuse_nul(value)
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


def mysql_string(value: str) -> str:
    """A MySQL/MariaDB string literal (user names, passwords, host patterns)."""
    _refuse_nul(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def mysql_ident(name: str) -> str:
    """A MySQL/MariaDB identifier, back-quoted."""
    _refuse_nul(name)
    return "`" + name.replace("`", "``") + "`"


def _readable(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_") or "u"


def _refuse_nul(value: str) -> None:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed in SQL names or literals")
