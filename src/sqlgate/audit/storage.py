"""The state-database side of the log: batch writes, chain heads, chain ids, reading back.

A batch is one transaction: its records (a few multi-row inserts) and the chain's
new signed head, signed in that transaction over the chain ids it finds there.
Reading for verification and export goes chain by chain in insertion order, in
pages, so a log of any size streams in bounded memory.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Dialect, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sqlgate.audit.chain import ChainedRecord
from sqlgate.audit.tables import audit_heads, audit_records
from sqlgate.store import StateStore

CHAIN_ID_FILE = "chain_id"
_ROW_COLUMNS = tuple(column.name for column in audit_records.columns if column.name != "id")


@dataclass(frozen=True, slots=True)
class Head:
    """The newest record of a chain as last committed, signed."""

    chain: str
    seq: int
    hash: str
    time: str
    key_id: str
    signature: str
    chains: tuple[str, ...] | None = None  # the chain ids it signs (None: a head from before they were signed)

    def as_json(self) -> dict[str, object]:
        """The head as ``sqlgate audit head`` prints it (and ``verify --head`` reads it)."""
        return {
            "chain": self.chain,
            "seq": self.seq,
            "hash": self.hash,
            "time": self.time,
            "key_id": self.key_id,
            "signature": self.signature,
            "chains": None if self.chains is None else list(self.chains),
        }


MakeHead = Callable[[Sequence[str]], Head]
"""Signs the chain's new head, given the chain ids stored when its batch commits."""


def chains_column(chains: tuple[str, ...] | None) -> str | None:
    """``audit_heads.chains`` of a head: a JSON list, or NULL."""
    return None if chains is None else json.dumps(list(chains), separators=(",", ":"))


def parse_chains(text: str | None) -> tuple[str, ...] | None:
    """The chain ids of ``audit_heads.chains``; an unreadable value reads as an empty list (whose signature fails)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return ()
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored record as the verifier sees it: the hashed ``body``, its ``hash``, and the index columns."""

    body: str
    hash: str
    chain: str | None = None
    seq: int | None = None
    prev_hash: str | None = None
    type: str | None = None
    position: int | None = None


def row_of(record: ChainedRecord) -> dict[str, object]:
    """The ``audit_records`` row of ``record``."""
    return dict(zip(_ROW_COLUMNS, row_values(record), strict=True))


def row_values(record: ChainedRecord) -> tuple[object, ...]:
    """The ``audit_records`` values of ``record``, in :data:`_ROW_COLUMNS` order."""
    fields = record.fields
    principal = fields["principal"]
    return (
        record.chain,
        record.seq,
        record.prev_hash,
        record.hash,
        fields["time"],
        fields["type"],
        principal["subject"] if principal else None,
        principal["issuer"] if principal else None,
        fields["database"],
        fields["session_id"],
        fields["outcome"],
        record.body,
    )


# A batch goes in as a few multi-row INSERTs of these sizes: one statement per chunk costs the
# driver far less than a row-by-row executemany (and, for SQLite, one GIL hand-over per chunk,
# not per row). 256 rows x 12 columns stays under SQLite's 32,766 variables (999 before 3.32).
_CHUNKS = (256, 64, 16, 4, 1) if sqlite3.sqlite_version_info >= (3, 32) else (64, 16, 4, 1)
_insert_sql: dict[tuple[str, int], tuple[str, tuple[tuple[int, int], ...] | None]] = {}


def _insert_for(dialect: Dialect, rows: int) -> tuple[str, tuple[tuple[int, int], ...] | None]:
    """The driver-level INSERT of ``rows`` rows for ``dialect`` (compiled once).

    Also the (row, column) of each parameter when the dialect does not order them
    row by row in column order (None when it does, the usual case).
    """
    known = _insert_sql.get((dialect.name, rows))
    if known is None:
        values = [dict.fromkeys(_ROW_COLUMNS)] * rows
        compiled = insert(audit_records).values(values if rows > 1 else values[0]).compile(dialect=dialect)
        names = [f"{column}_m{row}" for row in range(rows) for column in _ROW_COLUMNS] if rows > 1 else _ROW_COLUMNS
        order = tuple(compiled.positiontup or names)
        places = None
        if list(order) != list(names):
            where = {name: divmod(at, len(_ROW_COLUMNS)) for at, name in enumerate(names)}
            places = tuple(where[name] for name in order)
        known = _insert_sql[dialect.name, rows] = (str(compiled), places)
    return known


def _chunk_sizes(count: int) -> list[int]:
    sizes = []
    for size in _CHUNKS:
        while count >= size:
            sizes.append(size)
            count -= size
    return sizes


def insert_statements(dialect: Dialect, records: Sequence[ChainedRecord]) -> Iterator[tuple[str, tuple[object, ...]]]:
    """The driver-level (SQL, parameters) that insert ``records``: a few multi-row INSERTs."""
    rows = [row_values(record) for record in records]
    at = 0
    for size in _chunk_sizes(len(rows)):
        sql, places = _insert_for(dialect, size)
        chunk = rows[at : at + size]
        at += size
        if places is None:
            yield sql, tuple(value for row in chunk for value in row)
        else:  # a dialect that orders parameters its own way
            yield sql, tuple(chunk[row][column] for row, column in places)


def head_values(head: Head) -> dict[str, object]:
    """The ``audit_heads`` columns of ``head`` but its chain."""
    return {
        "seq": head.seq,
        "hash": head.hash,
        "time": head.time,
        "key_id": head.key_id,
        "signature": head.signature,
        "chains": chains_column(head.chains),
    }


async def write_batch(conn: AsyncConnection, records: Sequence[ChainedRecord], make_head: MakeHead) -> Head:
    """Insert ``records`` and move the chain's head (signed over the stored chain ids), in the caller's transaction."""
    for sql, params in insert_statements(conn.dialect, records):
        await conn.exec_driver_sql(sql, params)
    stored = (await conn.execute(select(audit_heads.c.chain))).scalars().all()
    head = make_head(stored)
    values = head_values(head)
    result = await conn.execute(update(audit_heads).where(audit_heads.c.chain == head.chain).values(**values))
    if result.rowcount == 0:
        await conn.execute(insert(audit_heads).values(chain=head.chain, **values))
    return head


class StoreBatchWriter:
    """Writes batches through the state store's own connections (any database it supports)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def write(self, records: Sequence[ChainedRecord], make_head: MakeHead) -> Head:
        """One transaction: ``records`` and the chain's new head; returns the head."""
        async with self.store.begin() as conn:
            return await write_batch(conn, records, make_head)

    async def close(self) -> None:
        """Nothing of its own to close."""


async def read_heads(store: StateStore) -> dict[str, Head]:
    """The signed head of every chain."""
    async with store.begin() as conn:
        rows = (await conn.execute(select(audit_heads))).all()
    return {
        row.chain: Head(row.chain, row.seq, row.hash, row.time, row.key_id, row.signature, parse_chains(row.chains))
        for row in rows
    }


async def last_record(store: StateStore, chain: str) -> tuple[int, str] | None:
    """(seq, hash) of the newest stored record of ``chain``, or None."""
    async with store.begin() as conn:
        top = select(func.max(audit_records.c.seq)).where(audit_records.c.chain == chain).scalar_subquery()
        row = (
            await conn.execute(
                select(audit_records.c.seq, audit_records.c.hash).where(
                    audit_records.c.chain == chain, audit_records.c.seq == top
                )
            )
        ).first()
    return None if row is None else (int(row.seq), str(row.hash))


async def chain_ids(store: StateStore) -> list[str]:
    """Every chain that has records or a head."""
    async with store.begin() as conn:
        stored = (await conn.execute(select(audit_records.c.chain).distinct())).scalars().all()
        heads = (await conn.execute(select(audit_heads.c.chain))).scalars().all()
    return sorted(set(stored) | set(heads))


async def entries(store: StateStore, chain: str, *, since: str | None = None, page: int = 5000) -> AsyncIterator[Entry]:
    """The records of ``chain`` in insertion order (``since``: only those at or after that time)."""
    cols = audit_records.c
    after = 0
    while True:
        query = select(cols.id, cols.body, cols.hash, cols.chain, cols.seq, cols.prev_hash, cols.type).where(
            cols.chain == chain, cols.id > after
        )
        if since is not None:
            query = query.where(cols.time >= since)
        async with store.begin() as conn:
            rows = (await conn.execute(query.order_by(cols.id).limit(page))).all()
        for row in rows:
            yield Entry(row.body, row.hash, row.chain, row.seq, row.prev_hash, row.type, row.id)
        if len(rows) < page:
            return
        after = rows[-1].id


def chain_id_for(data_dir: Path, configured: str | None) -> str:
    """``audit.chain_id``, else the id kept in ``data_dir/audit/chain_id`` (made at first start)."""
    if configured:
        return configured
    path = data_dir / "audit" / CHAIN_ID_FILE
    try:
        value = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        value = secrets.token_hex(8)
        path.write_text(value + "\n", encoding="ascii")
    return value
