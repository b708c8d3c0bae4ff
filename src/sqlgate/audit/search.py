"""Search the audit log: filters over the index columns, newest first, keyset pagination.

``search(store, who=..., db=..., since=..., until=..., type=..., grep=...,
limit=..., cursor=...)`` returns a :class:`Page`; pass ``page.next_cursor``
back to get the next (older) page. The cursor is the insertion position of
the last record shown, so pages never skip or repeat records while new ones
arrive. Records of every chain (replica) are merged in insertion order.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, select

from sqlgate.audit.canonical import format_time
from sqlgate.audit.chain import with_hash
from sqlgate.audit.tables import audit_records
from sqlgate.store import StateStore

MAX_LIMIT = 1000
_COLUMNS = (audit_records.c.id, audit_records.c.body, audit_records.c.hash)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of records (newest first) and the cursor of the next page (None: no more)."""

    records: list[dict[str, Any]]
    next_cursor: str | None


def parse_time(value: str | datetime) -> str:
    """A time filter as stored text; accepts ISO 8601 (``2026-01-31``, ``2026-01-31T12:00:00Z``)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value!r} (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)") from None
    return format_time(value)


def _filtered(  # noqa: PLR0913 - one keyword per filter
    query: Select[Any],
    *,
    who: str | None = None,
    db: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    type: str | None = None,  # noqa: A002 - the filter is called type everywhere (CLI, API)
    grep: str | None = None,
    outcome: str | None = None,
    session: str | None = None,
) -> Select[Any]:
    cols = audit_records.c
    if who:
        issuer, sep, subject = who.rpartition("#")
        query = query.where(and_(cols.issuer == issuer, cols.subject == subject) if sep else cols.subject == who)
    if db:
        query = query.where(cols.database == db)
    if since is not None:
        query = query.where(cols.time >= parse_time(since))
    if until is not None:
        query = query.where(cols.time < parse_time(until))
    if type:
        prefix = type.rstrip("*")
        is_prefix = prefix != type or type.endswith(".")
        query = query.where(cols.type.startswith(prefix, autoescape=True) if is_prefix else cols.type == type)
    if grep:
        query = query.where(cols.body.icontains(grep, autoescape=True))
    if outcome:
        query = query.where(cols.outcome == outcome)
    if session:
        query = query.where(cols.session_id == session)
    return query


def _record(row: Any) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(with_hash(row.body, row.hash))
    return record


async def search(  # noqa: PLR0913 - one keyword per filter
    store: StateStore,
    *,
    who: str | None = None,
    db: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    type: str | None = None,  # noqa: A002 - the filter is called type everywhere (CLI, API)
    grep: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
    outcome: str | None = None,
    session: str | None = None,
) -> Page:
    """Records matching every given filter, newest first, at most ``limit`` (1..1000) per page.

    ``who``: a subject, or ``issuer#subject``; ``type``: exact, or a prefix ending
    in ``*`` or ``.`` (``lease.*``); ``grep``: case-insensitive text anywhere in
    the record; ``since``/``until``: ISO 8601 times (until is exclusive); ``outcome``: exact
    (``denied``, ``success``, ...); ``session``: one session's records.
    Raises ValueError for a bad time, limit or cursor.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    query = _filtered(
        select(*_COLUMNS),
        who=who,
        db=db,
        since=since,
        until=until,
        type=type,
        grep=grep,
        outcome=outcome,
        session=session,
    )
    if cursor is not None:
        query = query.where(audit_records.c.id < _position(cursor))
    async with store.begin() as conn:
        rows = (await conn.execute(query.order_by(audit_records.c.id.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = f"p{rows[-1].id}" if more and rows else None
    return Page([_record(row) for row in rows], next_cursor)


def _position(cursor: str) -> int:
    if not (cursor.startswith("p") and cursor[1:].isdigit()):
        raise ValueError("invalid cursor (pass back next_cursor from the previous page)")
    return int(cursor[1:])


async def newer(store: StateStore, after: int, *, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
    """(position, record) of the records stored after position ``after``, oldest first (for ``tail -f``)."""
    query = select(*_COLUMNS).where(audit_records.c.id > after).order_by(audit_records.c.id).limit(limit)
    async with store.begin() as conn:
        rows = (await conn.execute(query)).all()
    return [(row.id, _record(row)) for row in rows]


async def export_lines(
    store: StateStore, *, since: str | datetime | None = None, page: int = 5000
) -> AsyncIterator[str]:
    """Every record (or those at or after ``since``) as JSON lines, in insertion order, for offline verification."""
    after = 0
    since_text = parse_time(since) if since is not None else None
    while True:
        query = select(*_COLUMNS).where(audit_records.c.id > after)
        if since_text is not None:
            query = query.where(audit_records.c.time >= since_text)
        async with store.begin() as conn:
            rows = (await conn.execute(query.order_by(audit_records.c.id).limit(page))).all()
        for row in rows:
            yield with_hash(row.body, row.hash)
        if len(rows) < page:
            return
        after = rows[-1].id
