"""The shape of a PostgreSQL server the tests can use, and the external one."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg


class PgServer(Protocol):
    """What tests need of a server: a URL per database and a way to run SQL as superuser."""

    host: str
    port: int

    def dsn(self, dbname: str = "postgres", user: str = ..., password: str | None = None) -> str: ...

    def psql(self, sql: str, dbname: str = "postgres") -> str: ...


class ExternalPostgres:
    """A server named by a superuser URL (``SQLGATE_TEST_PG_DSN``)."""

    def __init__(self, url: str) -> None:
        self.url = urlsplit(url)
        self.host = self.url.hostname or "127.0.0.1"
        self.port = self.url.port or 5432

    def dsn(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        netloc = self.url.netloc
        if user is not None:
            auth = f"{user}:{password}" if password else user
            netloc = f"{auth}@{self.host}:{self.port}"
        return urlunsplit((self.url.scheme, netloc, f"/{dbname}", self.url.query, ""))

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            cur = conn.execute(sql)
            if cur.description is None:
                return ""
            return "".join("|".join(str(v) for v in row) + "\n" for row in cur.fetchall())
