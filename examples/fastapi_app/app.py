"""The example app: customers read their own profile, orders and totals.

PostgreSQL row-level security (``rls.sql``) shows each request only its end user's rows.

The app holds no database password. It proves who it is to the sqlgate gateway
with its own token, gets a short-lived login that refreshes by itself, and runs
each request's transaction as the end user named by the request's bearer token.

Run against ``sqlgate up`` (see README.md)::

    uvicorn examples.fastapi_app.app:app --port 8000
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from sqlalchemy import text

from sqlgate.connector import (
    DevIssuerToken,
    EndUsers,
    GatewayCredentials,
    IdentitySource,
    JwksVerifier,
    TokenFile,
)
from sqlgate.connector.fastapi import Connector, CurrentEndUser, DbConnection, DbSession


def create_app(connector: Connector) -> FastAPI:
    """The app's routes over ``connector`` (which must have ``end_users`` and ``sqlalchemy=True``)."""
    app = FastAPI(title="sqlgate connector example", lifespan=connector.lifespan)

    @app.get("/me")
    async def me(db: DbConnection, user: CurrentEndUser) -> dict[str, Any]:
        """The caller's customer record (row-level security leaves only theirs)."""
        row = await db.fetchrow("SELECT id, name, email, region FROM customers")
        if row is None:
            raise HTTPException(404, f"no customer record for {user.subject if user else 'nobody'}")
        return dict(row)

    @app.get("/orders")
    async def orders(
        db: DbConnection, status: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[Any]:
        """The caller's orders, newest first."""
        rows = await db.fetch(
            "SELECT id, customer_id, total::float8 AS total, status, created_at FROM orders"
            " WHERE $1::text IS NULL OR status = $1 ORDER BY created_at DESC, id LIMIT $2",
            status,
            limit,
        )
        return [dict(row) for row in rows]

    @app.get("/stats")
    async def stats(session: DbSession) -> dict[str, Any]:
        """The caller's order count and total per status (through SQLAlchemy)."""
        result = await session.execute(
            text("SELECT status, count(*), coalesce(sum(total), 0)::float8 FROM orders GROUP BY status ORDER BY 1")
        )
        return {status: {"orders": count, "total": total} for status, count, total in result}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness (the lifespan already proved the database at start-up)."""
        return {"status": "ok"}

    return app


def connector_from_env() -> Connector:
    """The connector for ``sqlgate up``'s demo, or for a gateway named by environment variables.

    ``SQLGATE_URL`` (default ``http://127.0.0.1:8480``), ``SQLGATE_DATABASE`` (``demo``),
    ``SQLGATE_TOKEN_FILE`` (the app's token; default: a dev-issuer token for
    ``svc-orders`` in group ``dba``), ``SQLGATE_ISSUER`` (end users' issuer; default
    the gateway's dev issuer), ``SQLGATE_AUDIENCE`` (the audience of end users' tokens: for the
    dev issuer, the gateway's ``identity.deployment_id`` as ``sqlgate config show`` prints it).
    """
    gateway = os.environ.get("SQLGATE_URL", "http://127.0.0.1:8480").rstrip("/")
    issuer = os.environ.get("SQLGATE_ISSUER", f"{gateway}/dev-issuer")
    token_file = os.environ.get("SQLGATE_TOKEN_FILE")
    identity: IdentitySource = (
        TokenFile(token_file) if token_file else DevIssuerToken("svc-orders", groups=["dba"], issuer=issuer)
    )
    source = GatewayCredentials(gateway, os.environ.get("SQLGATE_DATABASE", "demo"), identity=identity)
    verifier = JwksVerifier(f"{issuer}/jwks", issuer=issuer, audience=os.environ.get("SQLGATE_AUDIENCE", "sqlgate"))
    return Connector(source, end_users=EndUsers(verifier), sqlalchemy=True)


app = create_app(connector_from_env())
