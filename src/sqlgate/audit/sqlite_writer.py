"""Audit batches straight into a SQLite state file: one thread, one connection, one hand-over per batch.

Through SQLAlchemy and aiosqlite every statement of a batch's transaction
(BEGIN, each INSERT, the head, COMMIT) is a trip to aiosqlite's thread and back,
and each trip competes for the interpreter lock with a busy event loop. This
writer runs the whole transaction as one call in its own thread, so the loop
hands a batch over once and sqlite3 works without the lock while it writes.
Used for SQLite state files; PostgreSQL goes through the store (asyncpg needs no
thread). Records are the same rows, written by the same INSERTs. The thread runs at
a lower CPU priority (:mod:`.priority`): background work, not a session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.engine import Dialect

from sqlgate.audit.chain import ChainedRecord
from sqlgate.audit.priority import lower_thread_priority
from sqlgate.audit.storage import Head, MakeHead, head_values, insert_statements
from sqlgate.store import StateStore

_BUSY_TIMEOUT_MS = 10_000  # as the store's own connections: wait for another writer's transaction
_CHAINS = "SELECT chain FROM audit_heads"
_UPDATE_HEAD = (
    "UPDATE audit_heads SET seq = ?, hash = ?, time = ?, key_id = ?, signature = ?, chains = ? WHERE chain = ?"
)
_INSERT_HEAD = (
    "INSERT INTO audit_heads (seq, hash, time, key_id, signature, chains, chain) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SqliteBatchWriter:
    """Writes audit batches into one SQLite file from a dedicated thread."""

    def __init__(self, path: Path, dialect: Dialect) -> None:
        self.path = path
        self.dialect = dialect
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sqlgate-audit-writer", initializer=lower_thread_priority
        )
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def for_store(cls, store: StateStore) -> SqliteBatchWriter | None:
        """A writer for ``store`` when it is a plain SQLite file, else None."""
        url = store.engine.url
        if not store.is_sqlite or not url.database or url.database == ":memory:" or url.query:
            return None
        return cls(Path(url.database), store.engine.dialect)

    async def write(self, records: Sequence[ChainedRecord], make_head: MakeHead) -> Head:
        """One transaction: ``records`` and the chain's new head, returned (raises sqlite3.Error when refused).

        ``make_head`` signs the head in the writer thread, inside the transaction,
        over the chain ids stored at that moment.
        """
        statements = []  # Python work here, not in the thread (where it would hold the lock the loop needs)
        for statement in insert_statements(self.dialect, records):
            statements.append(statement)
            await asyncio.sleep(0)  # one turn of the loop per INSERT built (a few dozen rows each)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._write, statements, make_head)

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _write(self, statements: list[tuple[str, tuple[object, ...]]], make_head: MakeHead) -> Head:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                conn.execute(sql, params)
            head = make_head([row[0] for row in conn.execute(_CHAINS)])
            values = (*head_values(head).values(), head.chain)
            if conn.execute(_UPDATE_HEAD, values).rowcount == 0:
                conn.execute(_INSERT_HEAD, values)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return head

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")  # with WAL (set by the store): survives a process crash
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
