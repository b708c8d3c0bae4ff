"""The attacker's side of the masking tests: secret data, every path a user has, and the leak detector.

Secrets are drawn from letters that never occur in hex or base64 of ordinary text
by chance (no a-f, no digits), long enough that any 5-character piece of one is
unique. A leak is any 5-character piece of a secret, or of its reversal, in any
case, anywhere in what the client (or the audit log) sees.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg
import httpx
import httpx2
import psycopg
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from sqlgate.pgwire.auth import PasswordMessage
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import Bind, Execute, Parse, Sync
from sqlgate.pgwire.startup import StartupMessage

ATTACK_POLICY = """\
rules:
  - name: analysts-read
    who: {groups: [analysts]}
    databases: [demo]
    role: read
    max_ttl: 1h
    guardrails: {deny: [write, ddl, dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
  - name: analysts-masked-writer
    who: {groups: [masked-writers]}
    databases: [demo]
    role: write
    max_ttl: 1h
    guardrails: {deny: [ddl, dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
  - name: masked-builders
    who: {groups: [masked-builders]}
    databases: [demo]
    role: write
    max_ttl: 1h
    guardrails: {deny: [dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
  - name: engineers-read
    who: {groups: [engineers]}
    databases: [demo]
    role: read
    max_ttl: 1h
"""
"""Analysts read with ``customers.email`` and ``*.ssn`` masked; masked writers and builders (DDL allowed) the same;
engineers unmasked."""

ALPHABET = "ghjkmnpqrsvwxyz"
"""No vowels, no hex digits, and no ``t``: SQL the audit log rightly holds (``typtype``, ``rngtypid``,
``tstmt``) otherwise makes runs of these letters that matched a random secret's piece by chance."""
PIECE = 5


def secret_word(length: int = 14) -> str:
    """A random word of letters that hex, digits and common text do not produce."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


class LeakDetector:
    """Finds any 5-character piece of the secrets (or their reversals) in text, case-insensitively."""

    def __init__(self, secret_values: Iterable[str]) -> None:
        pieces: set[str] = set()
        for value in secret_values:
            for text in (value.lower(), value.lower()[::-1]):
                pieces.update(text[i : i + PIECE] for i in range(len(text) - PIECE + 1))
        self.pieces = frozenset(pieces)

    def leaks(self, text: str) -> list[str]:
        """The secret pieces ``text`` contains."""
        lowered = text.lower()
        return sorted(piece for piece in self.pieces if piece in lowered)

    def where(self, text: str, width: int = 80) -> list[str]:
        """Each leak with the text around it, for a failure message that says where it was."""
        lowered = text.lower()
        found = []
        for piece in self.leaks(text):
            at = lowered.index(piece)
            found.append(text[max(0, at - width) : at + len(piece) + width])
        return found


def prepare_secrets(gateway: Any) -> list[str]:
    """Give every customer a secret e-mail local part and SSN; views over them; statistics. Returns the secrets."""
    rows = gateway.pg_server.psql("SELECT id FROM customers ORDER BY id", gateway.database).split()
    values: list[str] = []
    statements = []
    for row in rows:
        local, ssn = secret_word(), secret_word(10).upper()
        values += [local[1:], ssn]  # the e-mail mask shows the first letter and the domain
        statements.append(f"UPDATE customers SET email = '{local}@example.com', ssn = '{ssn}' WHERE id = {row};")
    read, owner = gateway.roles["read"], gateway.roles["owner"]
    statements += [
        "CREATE VIEW customer_emails AS SELECT id, email, upper(ssn) AS s FROM customers;",
        "CREATE MATERIALIZED VIEW customer_emails_mv AS SELECT id, email AS contact FROM customers;",
        "CREATE VIEW nested_emails AS SELECT e.email AS inner_email FROM customer_emails e;",
        f"GRANT SELECT ON customer_emails, customer_emails_mv, nested_emails TO {read};",
        f"ALTER VIEW customer_emails OWNER TO {owner}; ALTER VIEW nested_emails OWNER TO {owner};",
        f"ALTER MATERIALIZED VIEW customer_emails_mv OWNER TO {owner};",
        "ANALYZE customers;",
    ]
    gateway.pg_server.psql("\n".join(statements), gateway.database)
    return values


def _error_text(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    parts = [str(exc)]
    if diag is not None:
        names = ("message_primary", "message_detail", "message_hint", "context")
        parts += [str(getattr(diag, name, "") or "") for name in names]
    return " | ".join(parts)


class WirePaths:
    """The wire protocol paths: psycopg simple, extended, binary; cursors; SQL PREPARE; asyncpg; raw no-Describe."""

    def __init__(self, gateway: Any, user: str, groups: tuple[str, ...]) -> None:
        self.gateway = gateway
        self.user = user
        self.token = gateway.token(user, groups)
        self.notices: list[str] = []
        info = gateway.conninfo(user, self.token)
        self.simple = psycopg.connect(**info, autocommit=True, cursor_factory=psycopg.ClientCursor)
        self.extended = psycopg.connect(**info, autocommit=True, prepare_threshold=None)
        self.prepared = psycopg.connect(**info, autocommit=True, prepare_threshold=0)
        for conn in (self.simple, self.extended, self.prepared):
            conn.add_notice_handler(lambda diag: self.notices.append(f"{diag.message_primary} {diag.message_detail}"))

    def close(self) -> None:
        for conn in (self.simple, self.extended, self.prepared):
            conn.close()

    def run_all(self, sql: str, selectable: bool) -> dict[str, str]:
        """What each path shows for ``sql`` (rows, errors, notices), by path name."""
        seen = {
            "simple": self._psycopg(self.simple, sql),
            "extended": self._psycopg(self.extended, sql),
            "extended-prepared": self._psycopg(self.prepared, sql) + self._psycopg(self.prepared, sql),
            "binary": self._psycopg(self.extended, sql, binary=True),
            "asyncpg-described-once": self.gateway.call(self._asyncpg(sql)),
            "no-describe": raw_execute(self.gateway, self.user, self.token, sql),
        }
        if selectable:
            seen["cursor"] = self._cursor(sql)
            seen["sql-prepare"] = self._sql_prepare(sql)
        seen["notices"] = " ".join(self.notices)
        self.notices.clear()
        return seen

    @staticmethod
    def _psycopg(conn: psycopg.Connection, sql: str, *, binary: bool = False) -> str:
        try:
            with conn.cursor(binary=binary) as cur:
                cur.execute(sql)
                return repr(cur.fetchall()) if cur.description else repr(cur.statusmessage)
        except psycopg.Error as exc:
            return _error_text(exc)

    def _cursor(self, sql: str) -> str:
        try:
            with self.extended.transaction(), self.extended.cursor() as cur:
                cur.execute(f"DECLARE attack_cursor CURSOR FOR {sql}")
                cur.execute("FETCH ALL FROM attack_cursor")
                return repr(cur.fetchall())
        except psycopg.Error as exc:
            return _error_text(exc)

    def _sql_prepare(self, sql: str) -> str:
        statements = (f"PREPARE attack_stmt AS {sql}", "EXECUTE attack_stmt", "DEALLOCATE attack_stmt")
        return " ".join(self._psycopg(self.simple, statement) for statement in statements)

    async def _asyncpg(self, sql: str) -> str:
        """Asyncpg describes a statement once, then runs it again with Bind/Execute only."""
        gateway = self.gateway
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=gateway.pg_port, user=self.user, password=self.token, database="demo", ssl=False
            )
        except Exception as exc:
            return _error_text(exc)
        try:
            first = await conn.fetch(sql)
            second = await conn.fetch(sql)
            return repr([list(r) for r in first]) + repr([list(r) for r in second])
        except Exception as exc:
            return _error_text(exc)
        finally:
            await conn.close()


def raw_execute(gateway: Any, user: str, token: str, sql: str) -> str:
    """Parse/Bind/Execute/Sync with no Describe at all (as pgjdbc sends a statement it knows), every reply as text."""
    with socket.create_connection(("127.0.0.1", gateway.pg_port), timeout=10) as sock:
        sock.sendall(StartupMessage({"user": user, "database": "demo"}).encode() + PasswordMessage(token).encode())
        _read_until_ready(sock)
        batch = Parse("", sql).encode() + Bind("", "").encode() + Execute("").encode() + Sync().encode()
        sock.sendall(batch)
        return _read_until_ready(sock)


def _read_until_ready(sock: socket.socket) -> str:
    framer = Framer("backend")
    seen: list[str] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return " ".join(seen)
        framer.feed(data)
        while (frame := framer.next_frame()) is not None:
            seen.append(bytes(frame.payload).decode("utf-8", "replace"))
            if frame.type == ord("Z"):
                return " ".join(seen)


def http_query(gateway: Any, token: str, sql: str) -> str:
    """POST /v1/query; the whole response as text."""
    response = httpx.post(
        f"{gateway.http_url}/v1/query",
        json={"database": "demo", "sql": sql},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    return response.text


async def mcp_queries(gateway: Any, token: str, statements: list[str]) -> list[str]:
    """The MCP ``query`` tool for each statement, in one MCP session; each result as text."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        streamable_http_client(f"{gateway.http_url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        out = []
        for sql in statements:
            result = await session.call_tool("query", {"database": "demo", "sql": sql})
            texts = [getattr(content, "text", "") for content in result.content]
            out.append(json.dumps(texts) + json.dumps(result.structured_content))
        return out


def audit_text(gateway: Any) -> str:
    """Every audit record the gateway wrote, as JSON text (read through the API as an auditor)."""
    gateway.call(_flush(gateway))
    token = gateway.token("audrey", ("auditors",))
    texts, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = httpx.get(
            f"{gateway.http_url}/v1/audit", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        assert response.status_code == 200, response.text
        body = response.json()
        for record in body["records"]:
            _drop_signature(record)
        texts.append(json.dumps(body))
        cursor = body.get("next_cursor")
        if not cursor:
            return "\n".join(texts)


def _drop_signature(record: dict[str, Any]) -> None:
    """Blank a checkpoint's signature: base64 over a hash, it carries no data.

    Its letters would otherwise match some secret's five-letter piece by chance in about one run in three.
    """
    data = record.get("data")
    if record.get("type") == "audit.checkpoint" and isinstance(data, dict) and "signature" in data:
        data["signature"] = "<signature>"


async def _flush(gateway: Any) -> None:
    flush: Callable[[], Any] | None = getattr(gateway.gateway.services.audit, "flush", None)
    if flush is not None:
        await flush()
    await asyncio.sleep(0.1)
