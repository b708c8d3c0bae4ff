r"""MySQL/MariaDB statements for the HTTP API and MCP: the listener's checks and masking, on an asyncmy pool.

:meth:`sqlgate.api.query.QueryEngine.prepare` checks the text with the MySQL
listener's own :class:`sqlgate.access.mysql.statements.StatementPolicy` (sqlglot's
MySQL dialect, the grant's guardrails, USE of the granted database only);
on top of that, over HTTP, ``KILL`` is refused (each request has its own
connection: there is nothing of the caller's to kill) and so is ``LOAD DATA
LOCAL INFILE`` (an HTTP client has no file to send). Then, here:

- when the grant masks anything, the login's catalog (base tables, view
  definitions) is read on the pooled connection, and
  :class:`sqlgate.access.mysql.masking.MysqlMasking` analyses the statement exactly
  as the listener does: refusals (a masked value moved elsewhere, text that does
  not parse) before it runs, and a plan per result column from the column
  definitions the server sent (asyncmy keeps each raw packet, decoded with the
  listener's :class:`sqlgate.mywire.results.ColumnDefinition`) and the parse;
  unknown columns are replaced whole;
- without parameters the statement runs as COM_QUERY, rows read unbuffered up to
  the row limit (a truncated result's connection is closed rather than drained);
  with parameters (``?`` placeholders) as a server-side prepared statement;
- the statement timeout is the server's (``max_statement_time`` on MariaDB,
  ``max_execution_time`` on MySQL, SELECT only), with the gateway's own a little
  later as a backstop that ends the statement on the server
  (:meth:`sqlgate.api.mysqlpool.MysqlPool.end`);
- values become JSON as on PostgreSQL: integers and floats as numbers, DECIMAL,
  dates, times and datetimes as text (ISO 8601; TIME as ``[-]HH:MM:SS[.ffffff]``),
  binary strings as ``\\x`` hex;
- a server error is a 400 with the server's SQLSTATE and its error number
  (``error_code``), its text scrubbed of values when the grant masks anything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from asyncmy.cursors import SSCursor
from asyncmy.errors import Error as MysqlError

from sqlgate.access.masking import ColumnMask, Plan, mask_value
from sqlgate.access.mysql.catalog import CATALOG_SQL, MysqlCatalog
from sqlgate.access.mysql.masking import MysqlMasking, Shape
from sqlgate.access.mysql.statements import StatementPolicy
from sqlgate.access.scrub import scrub_text
from sqlgate.access.statements import Verdict
from sqlgate.api.errors import QueryFailed, QueryTimeout
from sqlgate.api.mysqlpool import set_session
from sqlgate.api.running import Authorized, Running
from sqlgate.api.values import Converter, to_json
from sqlgate.config import DatabaseConfig
from sqlgate.errors import GuardrailViolation, UpstreamError
from sqlgate.mywire.constants import BINARY_CHARSET, ColumnType
from sqlgate.mywire.results import ColumnDefinition
from sqlgate.policy.decide import Decision

if TYPE_CHECKING:
    from sqlgate.api.query import QueryEngine

STREAM_CHUNK_ROWS = 2000
BACKSTOP_SECONDS = 2.0
"""How long after the server's own timeout the gateway gives up on a statement and closes its connection."""
TIMEOUT_ERRORS = frozenset({1969, 3024})  # MariaDB ER_STATEMENT_TIMEOUT, MySQL ER_QUERY_TIMEOUT
KILL_REFUSAL = "refused by guardrail: KILL is not served over HTTP (each request has its own connection)"
LOCAL_INFILE_REFUSAL = "refused by guardrail: LOAD DATA LOCAL INFILE reads a client file, and an HTTP client has none"
PARAMS_HINT = "params bind to ? placeholders, in order"
DESCRIBE_SQL = (
    "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
    "WHERE table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') "
    "ORDER BY table_schema, table_name, ordinal_position"
)

# -- guardrails --------------------------------------------------------------------


def verdict(decision: Decision, config: DatabaseConfig, alias: str, sql: str) -> Verdict:
    """The MySQL listener's verdict on ``sql`` under ``decision``, with the refusals HTTP adds."""
    policy = StatementPolicy(
        decision.guardrails,
        database=config.dbname,
        rule=decision.matched_rules[0] if decision.matched_rules else None,
        alias=alias,
    )
    checked = policy.check(sql)
    if checked.kill is not None:
        return Verdict(refusal=KILL_REFUSAL)
    if checked.verdict.refusal is None and checked.local_infile:
        return Verdict(refusal=LOCAL_INFILE_REFUSAL)
    return checked.verdict


# -- values ------------------------------------------------------------------------

_TYPE_NAMES: dict[int, str] = {
    ColumnType.DECIMAL: "decimal",
    ColumnType.NEWDECIMAL: "decimal",
    ColumnType.TINY: "tinyint",
    ColumnType.SHORT: "smallint",
    ColumnType.INT24: "mediumint",
    ColumnType.LONG: "int",
    ColumnType.LONGLONG: "bigint",
    ColumnType.FLOAT: "float",
    ColumnType.DOUBLE: "double",
    ColumnType.NULL: "null",
    ColumnType.TIMESTAMP: "timestamp",
    ColumnType.TIMESTAMP2: "timestamp",
    ColumnType.DATE: "date",
    ColumnType.NEWDATE: "date",
    ColumnType.TIME: "time",
    ColumnType.TIME2: "time",
    ColumnType.DATETIME: "datetime",
    ColumnType.DATETIME2: "datetime",
    ColumnType.YEAR: "year",
    ColumnType.BIT: "bit",
    ColumnType.JSON: "json",
    ColumnType.ENUM: "enum",
    ColumnType.SET: "set",
    ColumnType.GEOMETRY: "geometry",
    ColumnType.VECTOR: "vector",
}
_STRING_NAMES: dict[int, tuple[str, str]] = {  # (text name, binary name)
    ColumnType.VARCHAR: ("varchar", "varbinary"),
    ColumnType.VAR_STRING: ("varchar", "varbinary"),
    ColumnType.STRING: ("char", "binary"),
    ColumnType.TINY_BLOB: ("tinytext", "tinyblob"),
    ColumnType.BLOB: ("text", "blob"),
    ColumnType.MEDIUM_BLOB: ("mediumtext", "mediumblob"),
    ColumnType.LONG_BLOB: ("longtext", "longblob"),
}
_PLAIN_TYPES = frozenset(
    {ColumnType.TINY, ColumnType.SHORT, ColumnType.INT24, ColumnType.LONG, ColumnType.LONGLONG, ColumnType.YEAR}
)


def type_name(column: ColumnDefinition) -> str:
    """The column's SQL type name as MySQL spells it (``varchar``, ``decimal``, ``blob``...)."""
    strings = _STRING_NAMES.get(column.type)
    if strings is not None:
        return strings[1] if column.charset == BINARY_CHARSET else strings[0]
    return _TYPE_NAMES.get(column.type, f"type {column.type}")


def time_text(value: timedelta) -> str:
    """A TIME value as MySQL writes it: ``[-]HH:MM:SS[.ffffff]``, hours beyond 24 kept."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    text = f"{sign}{hours:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{fraction:06d}" if fraction else text


def value_to_json(value: Any) -> Any:
    """One asyncmy value as JSON-ready data."""
    if isinstance(value, timedelta):
        return time_text(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return ",".join(sorted(str(item) for item in value))
    return to_json(value)


def _masked(mask: ColumnMask, value: Any) -> Any:
    return mask_value(mask, value, value if isinstance(value, str) else None)


def converters(columns: Sequence[ColumnDefinition], plan: Plan) -> list[Converter | None]:
    """Per column: None when the value is JSON as it is, else the function that makes it JSON (or masks it)."""
    result: list[Converter | None] = []
    for index, column in enumerate(columns):
        mask = plan.get(index)
        if mask is not None:
            result.append(partial(_masked, mask))
        elif column.type in _PLAIN_TYPES or (column.type in _STRING_NAMES and column.charset != BINARY_CHARSET):
            result.append(None)
        else:
            result.append(value_to_json)
    return result


def bind(value: Any) -> Any:
    """A JSON parameter as asyncmy binds it: objects and arrays as JSON text, booleans as 0/1."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


# -- running -----------------------------------------------------------------------


@dataclass
class Executed:
    """A statement's first result: column definitions, the rows read, affected rows, and the cursor for more."""

    columns: list[ColumnDefinition]
    rows: list[Any]
    affected: int
    cursor: Any = None  # an unbuffered cursor that may have more rows
    buffered: list[Any] = field(default_factory=list)  # the rest of a prepared statement's rows

    async def more(self, count: int) -> list[Any]:
        """The next ``count`` rows at most (none when the result is done)."""
        if self.cursor is not None:
            return list(await self.cursor.fetchmany(count))
        chunk, self.buffered = self.buffered[:count], self.buffered[count:]
        return chunk


async def execute(connection: Any, sql: str, params: Sequence[Any], fetch: int) -> Executed:
    """Run ``sql`` (prepared when it has ``params``) and read at most ``fetch`` rows of its result."""
    if params:
        statement = await connection.prepare(sql)
        if statement.parameter_count != len(params):
            raise QueryFailed(
                f"the statement has {statement.parameter_count} placeholders and {len(params)} params were sent",
                code="HY000",
                hint=PARAMS_HINT,
            )
        result = await statement.execute(tuple(bind(value) for value in params))
        if not result.field_count:
            return Executed([], [], int(result.affected_rows or 0))
        rows = list(result.rows or ())
        return Executed(_definitions(result.fields), rows[:fetch], 0, buffered=rows[fetch:])
    cursor = connection.cursor(SSCursor)
    await cursor.execute(sql)
    result = cursor._result  # noqa: SLF001 - the column definitions live on asyncmy's result
    if result is None or not result.field_count:
        return Executed([], [], int(result.affected_rows if result is not None else 0))
    rows = list(await cursor.fetchmany(fetch))
    return Executed(_definitions(result.fields), rows, 0, cursor)


def _definitions(fields: Sequence[Any]) -> list[ColumnDefinition]:
    """The listener's column definitions, decoded from the packets asyncmy kept."""
    return [ColumnDefinition.decode(bytes(packet.get_all_data())) for packet in fields]


async def read_catalog(connection: Any) -> MysqlCatalog:
    """The base tables and views the connection's login can see."""
    async with connection.cursor() as cursor:
        await cursor.execute(CATALOG_SQL)
        rows = await cursor.fetchall()
    return MysqlCatalog.from_rows(rows)


Masked = tuple[MysqlMasking, Shape | None] | None


async def masking(engine: QueryEngine, job: Authorized, connection: Any, running: Running) -> Masked:
    """The grant's masking for this statement, as the listener's; refuses what masking cannot cover."""
    mask = job.decision.mask
    if not mask:
        return None
    catalog = await read_catalog(connection)
    session = MysqlMasking(
        mask,
        hash_key=engine.hash_key,
        base_tables=catalog.base_tables,
        views=catalog.views,
        database=engine.database(job.statement.database).dbname,
    )
    analysis = session.analyze(job.statement.sql)
    if analysis.refusal is not None:
        raise running.refused(GuardrailViolation(f"refused while masking rules apply: {analysis.refusal}"))
    return session, (analysis.shapes[0] if len(analysis.shapes) == 1 else None)


def plan(masked: Masked, columns: list[ColumnDefinition]) -> list[Converter | None]:
    """How each column becomes JSON, masked by the listener's plan for these column definitions."""
    if masked is None:
        return converters(columns, {})
    session, shape = masked
    return converters(columns, session.plan(shape, columns))


def failure(exc: Exception, job: Authorized, connection: Any) -> Exception:
    """The API error for a MySQL error (others unchanged); a connection left mid-reply is closed."""
    if isinstance(exc, TimeoutError):
        if connection is not None:
            connection.close()
        return exc
    if not isinstance(exc, MysqlError):
        return exc
    args = exc.args
    number = args[0] if args and isinstance(args[0], int) else 0
    message = str(args[1]) if len(args) > 1 else str(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    if number in TIMEOUT_ERRORS:
        return QueryTimeout(
            f"the statement ran longer than its timeout of {job.timeout_ms} ms",
            hint="send a larger timeout_ms, or narrow the query",
        )
    if number == 0 or number >= 2000:  # the client's own errors: the connection is gone or out of step
        if connection is not None:
            connection.close()
        return UpstreamError(f"the connection to {job.statement.database} failed: {message}")
    if job.decision.mask:
        message = scrub_text(sqlstate, message)
    return QueryFailed(f"{message} (error {number})", code=sqlstate or "HY000", error_code=number)


def _deadline(job: Authorized) -> float:
    return job.timeout_ms / 1000 + BACKSTOP_SECONDS


async def _start(engine: QueryEngine, job: Authorized, running: Running, fetch: int) -> tuple[Executed, list[Any]]:
    connection = running.connection
    if job.timeout_ms != engine.pools.default_timeout_ms:
        await set_session(connection, job.timeout_ms)
    masked = await masking(engine, job, connection, running)
    executed = await execute(connection, job.statement.sql, job.statement.params, fetch)
    return executed, plan(masked, executed.columns)


def _columns(executed: Executed) -> list[dict[str, str]]:
    return [{"name": column.name, "type": type_name(column)} for column in executed.columns]


async def run(engine: QueryEngine, job: Authorized) -> dict[str, Any]:
    """Run to completion: ``{columns, rows, row_count, truncated, duration_ms}`` as on PostgreSQL."""
    from sqlgate.api.values import row_to_json  # noqa: PLC0415 - kept with the PostgreSQL converters

    limit = job.statement.max_rows or engine.services.settings.api.max_rows
    started = time.perf_counter()
    async with Running(engine, job) as running:
        try:
            async with asyncio.timeout(_deadline(job)):
                executed, converters_ = await _start(engine, job, running, limit + 1)
        except Exception as exc:
            if isinstance(exc, TimeoutError) and running.connection is not None:
                await job.pool.end(running.connection)
            raise running.failure(failure(exc, job, running.connection)) from exc
        truncated = len(executed.rows) > limit
        if truncated and executed.cursor is not None:
            running.connection.close()  # rows owed: closed rather than drained
        duration = (time.perf_counter() - started) * 1000
        body = [row_to_json(row, converters_) for row in executed.rows[:limit]]
        count = len(body) if executed.columns else executed.affected
        running.done(rows=count, duration_ms=duration)
    return {
        "columns": _columns(executed),
        "rows": body,
        "row_count": count,
        "truncated": truncated,
        "duration_ms": round(duration, 3),
    }


async def stream(engine: QueryEngine, job: Authorized) -> AsyncIterator[bytes]:
    """NDJSON as on PostgreSQL: a ``{"columns": ...}`` line, one array per row, then the count and duration."""
    from sqlgate.api.ndjson import dumps_line  # noqa: PLC0415 - tiny module, kept apart for the encoder
    from sqlgate.api.values import row_to_json  # noqa: PLC0415

    started = time.perf_counter()
    async with Running(engine, job) as running:
        try:
            async with asyncio.timeout(_deadline(job)):
                executed, converters_ = await _start(engine, job, running, STREAM_CHUNK_ROWS)
            yield dumps_line({"columns": _columns(executed)})
            count = executed.affected
            if executed.columns:
                count = 0
                chunk = executed.rows
                while chunk:
                    count += len(chunk)
                    yield b"".join(dumps_line(row_to_json(row, converters_)) for row in chunk)
                    chunk = await executed.more(STREAM_CHUNK_ROWS)
        except Exception as exc:
            if isinstance(exc, TimeoutError) and running.connection is not None:
                await job.pool.end(running.connection)
            raise running.failure(failure(exc, job, running.connection)) from exc
        duration = (time.perf_counter() - started) * 1000
        running.done(rows=count, duration_ms=duration)
    yield dumps_line({"row_count": count, "duration_ms": round(duration, 3)})
