"""A stand-in for the sqlgate gateway's ``POST /v1/credentials`` that mints real PostgreSQL logins.

Each request with an accepted bearer token gets a new login,
``CREATE ROLE ... LOGIN PASSWORD ... VALID UNTIL ...`` on the server behind
``admin_dsn`` (a superuser or CREATEROLE login), so a login with an expired
credential really fails. Refusals are RFC 9457 problem JSON, as from the gateway.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sqlgate.connector.endusers import quote_ident

TokenCheck = Callable[[str], Awaitable[bool]]
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600}


class MintingGateway:
    """``POST /v1/credentials`` over ``admin_dsn``; credentials name ``host:port/dbname`` for clients.

    ``tokens`` is the set of accepted bearer tokens or an async check; ``grant`` a
    role each login is made a member of. Set :attr:`failure` to ``(status, detail)``
    to answer every request with that problem (a down or refusing gateway).
    :attr:`minted` lists ``(user, expires_at)`` of every login made.
    """

    def __init__(  # noqa: PLR0913 - keyword-only options of a public constructor
        self,
        admin_dsn: str,
        *,
        host: str,
        port: int,
        dbname: str,
        tokens: Collection[str] | TokenCheck,
        grant: str | None = None,
        default_ttl: float = 900.0,
    ) -> None:
        self.admin_dsn = admin_dsn
        self.host, self.port, self.dbname = host, port, dbname
        self.grant = grant
        self.default_ttl = default_ttl
        self.failure: tuple[int, str] | None = None
        self.minted: list[tuple[str, datetime]] = []
        self.requests = 0
        self._check = tokens if callable(tokens) else _accept_from(frozenset(tokens))
        self.app = FastAPI(title="sqlgate gateway stand-in")
        self.app.add_api_route("/v1/credentials", self._credentials, methods=["POST"])

    def drop_sql(self) -> str:
        """SQL (for a superuser) dropping every login minted so far."""
        return "".join(f'DROP ROLE IF EXISTS "{user}";' for user, _ in self.minted)

    async def _credentials(self, request: Request) -> JSONResponse:
        self.requests += 1
        if self.failure is not None:
            return _problem(*self.failure)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token or not await self._check(token):
            return _problem(401, "the token is missing, expired or not trusted")
        try:
            body: Any = await request.json()
            database = body["database"]
            ttl = _seconds(body.get("ttl"), self.default_ttl)
        except (ValueError, KeyError, TypeError):
            return _problem(400, "the body must be JSON with database, role and ttl")
        if database != self.dbname:
            return _problem(403, f"no rule grants database {database!r}", rule="default-deny")
        return JSONResponse(await self._mint(ttl))

    async def _mint(self, ttl: float) -> dict[str, Any]:
        user = f"sgt_{secrets.token_hex(6)}"
        password = secrets.token_urlsafe(24)
        expires_at = (datetime.now(UTC) + timedelta(seconds=ttl)).replace(microsecond=0)
        member = f" IN ROLE {quote_ident(self.grant)}" if self.grant else ""
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(
                f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}' VALID UNTIL '{expires_at.isoformat()}'{member}"
            )
        finally:
            await admin.close()
        self.minted.append((user, expires_at))
        dsn = f"postgresql://{user}:{password}@{self.host}:{self.port}/{self.dbname}"
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": user,
            "password": password,
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
            "dsn": dsn,
        }


def _accept_from(tokens: frozenset[str]) -> TokenCheck:
    async def check(token: str) -> bool:
        return token in tokens

    return check


def _seconds(value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError(value)
    return float(match[1]) * _UNIT[match[2]]


def _problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "https://sqlgate.dev/problems/stand-in", "title": "refused", "status": status, "detail": detail}
    return JSONResponse({**body, **extra}, status_code=status, media_type="application/problem+json")
