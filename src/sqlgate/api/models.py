"""Request and response bodies of the HTTP API (they are also its OpenAPI schemas)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryRequest(_Body):
    """One SQL statement to run on a database, as the caller."""

    database: str = Field(min_length=1, max_length=63, description="Database alias from the gateway's settings.")
    sql: str = Field(
        min_length=1,
        max_length=1_000_000,
        description="One SQL statement; `$1`, `$2`... for params (`?` on MySQL).",
    )
    params: list[Any] = Field(
        default_factory=list,
        max_length=10_000,
        description="Values for `$1`, `$2`... as JSON values (numbers, strings, booleans, null, arrays); "
        "a parameter typed other than text/number/boolean takes a cast in the SQL, e.g. `$1::text::date`. "
        "On a MySQL database they bind to `?` placeholders in order.",
    )
    role: str | None = Field(
        None,
        min_length=1,
        max_length=63,
        description="Privilege level to use (e.g. `read`); the best one policy grants when absent.",
    )
    max_rows: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Most rows to return as JSON (capped by `api.max_rows`); NDJSON streams all.",
    )
    timeout_ms: int | None = Field(
        None, ge=1, le=3_600_000, description="Statement timeout in milliseconds (the server enforces it)."
    )


class ColumnInfo(BaseModel):
    """One result column."""

    name: str = Field(description="Column name as the database returns it.")
    type: str = Field(description="PostgreSQL type name (`int4`, `text`, `timestamptz`...).")


class QueryResult(BaseModel):
    """The result of a statement."""

    columns: list[ColumnInfo] = Field(description="Result columns in order (empty for statements without rows).")
    rows: list[list[Any]] = Field(
        description="Rows as arrays in column order; numeric, dates and bytea as text; masked values as text."
    )
    row_count: int = Field(description="Rows returned, or affected by INSERT/UPDATE/DELETE.")
    truncated: bool = Field(description="True when more rows existed than `max_rows`.")
    duration_ms: float = Field(description="Time the statement took in the gateway, in milliseconds.")


class WhoAmI(BaseModel):
    """The verified caller."""

    subject: str = Field(description="The token's subject.")
    issuer: str = Field(description="The token's issuer.")
    name: str = Field(description="Display name.")
    email: str | None = Field(None, description="Email, when the token has one.")
    groups: list[str] = Field(description="Groups from the token (policy matches on these).")
    method: str = Field(description="How the identity was verified (oidc, dev, aws_iam...).")
    source: str | None = Field(None, description="The address the request came from.")
    expires_at: str | None = Field(None, description="When the token expires (ISO 8601).")


class ConnectInfo(BaseModel):
    """How to reach a database through the gateway's PostgreSQL listener."""

    host: str = Field(description="The gateway's pgwire host.")
    port: int = Field(description="The gateway's pgwire port.")
    dbname: str = Field(description="The database alias to connect to.")
    psql: str = Field(description="A psql command line (the password is your token).")


class DatabaseAccess(BaseModel):
    """A database the caller may use now, or after an approval."""

    name: str = Field(description="Database alias.")
    engine: str = Field(description="postgres, mysql or cloudsql.")
    access: Literal["allow", "needs_approval"] = Field(description="Usable now, or after an access request.")
    role: str | None = Field(description="The privilege level policy grants.")
    ttl: str | None = Field(description="How long a session or credential may last (e.g. `1h`).")
    ttl_seconds: int | None = Field(description="The same, in seconds.")
    rules: list[str] = Field(description="The policy rules that decided.")
    reason: str | None = Field(None, description="Why approval is needed, when it is.")
    connect: ConnectInfo | None = Field(None, description="How to connect (PostgreSQL databases).")


class DatabaseList(BaseModel):
    """Databases the caller may reach."""

    databases: list[DatabaseAccess] = Field(description="One entry per database policy grants or offers.")


class CredentialsRequest(_Body):
    """A short-lived database login for direct use."""

    database: str = Field(min_length=1, max_length=63, description="Database alias.")
    role: str | None = Field(None, min_length=1, max_length=63, description="Privilege level (best granted if absent).")
    ttl: str | None = Field(
        None,
        min_length=1,
        max_length=16,
        pattern=r"^[0-9smhd]+$",
        description="Lifetime such as `15m` (capped by policy; policy's limit when absent).",
    )


class Credentials(BaseModel):
    """A login of the database itself; treat it as the secret it is."""

    host: str = Field(description="Database host.")
    port: int = Field(description="Database port.")
    dbname: str = Field(description="Database name on the server.")
    user: str = Field(description="The short-lived login.")
    password: str = Field(description="Its password (valid until `expires_at`).")
    expires_at: str = Field(description="When the login is dropped (ISO 8601).")
    dsn: str = Field(description="A connection URL with the credential in it.")


class AccessRequestCreate(_Body):
    """Ask for a role that needs approval."""

    database: str = Field(min_length=1, max_length=63, description="Database alias.")
    role: str = Field(min_length=1, max_length=63, description="The privilege level asked for.")
    duration: str | None = Field(
        None,
        min_length=1,
        max_length=16,
        pattern=r"^[0-9smhd]+$",
        description="How long, e.g. `1h`; at most the rule's cap (`approval.max_duration`, else `max_ttl`), "
        "which is the default. Longer is refused (400), naming the rule.",
    )
    reason: str = Field(
        "",
        max_length=2000,
        description="Why, for the approvers. Required unless the rule says `approval.require_reason: false` "
        "(refused with 400 naming the rule).",
    )


class ApproveBody(_Body):
    """An approval's optional comment."""

    comment: str = Field(
        default="", max_length=2000, description="Kept in the audit log; shown to the requester when it completes."
    )


class DenyBody(_Body):
    """Why a request is denied."""

    reason: str = Field(min_length=1, max_length=2000, description="The reason, shown to the requester.")


class Requester(BaseModel):
    """Who asked."""

    subject: str = Field(description="Subject of the requester's token.")
    issuer: str = Field(description="Issuer of the requester's token.")
    name: str = Field(description="Display name.")


class RequestPreviewOut(BaseModel):
    """What approving the request now would grant under the policy in force, and whether you may approve it."""

    request_id: str = Field(description="Request id.")
    database: str = Field(description="Database alias.")
    role: str = Field(description="Privilege level granted.")
    rule: str = Field(description="The rule that grants it.")
    requested: str = Field(description="The duration filed (e.g. `2h`).")
    duration: str = Field(description="How long an approval now grants (the filed duration, capped by the rule).")
    duration_seconds: int = Field(description="The same, in seconds.")
    starts_at: str = Field(description="When the window would start: now, at approval (ISO 8601).")
    expires_at: str = Field(description="When the grant would end (ISO 8601).")
    approvals: int = Field(description="Approvals so far.")
    min_approvals: int = Field(description="Distinct approvals needed under the rule in force.")
    completes: bool = Field(description="True when your approval would be the last one needed.")
    may_approve: bool = Field(description="True when you may approve (or deny) it now.")
    why_not: str | None = Field(description="Why you may not, when you may not.")
    pending_until: str | None = Field(description="When a pending request expires undecided (ISO 8601).")
    guardrails: dict[str, Any] | None = Field(description="The rule's guardrails on the grant.")
    mask: dict[str, str] = Field(description="The rule's masked columns.")


class AccessRequestOut(BaseModel):
    """An access request and where it stands."""

    id: str = Field(description="Request id.")
    requester: Requester = Field(description="Who asked.")
    database: str = Field(description="Database alias.")
    role: str = Field(description="Privilege level asked for.")
    rule: str = Field(description="The policy rule that needs the approval.")
    duration: str = Field(description="How long the grant lasts once approved.")
    reason: str = Field(description="The requester's reason.")
    status: str = Field(description="pending, approved, denied or expired.")
    approvals: int = Field(description="Approvals so far.")
    min_approvals: int = Field(description="Distinct approvals needed.")
    created_at: str = Field(description="When it was filed (ISO 8601).")
    decided_at: str | None = Field(description="When it was approved or denied.")
    expires_at: str | None = Field(description="When the grant ends (approved requests).")
    decided_by: str | None = Field(description="Who decided.")
    decision_reason: str | None = Field(
        description="Why it was denied (or, for a pending request that expired, that nobody decided in time)."
    )
    preview: RequestPreviewOut | None = Field(
        None, description="For approvers of its rule and administrators: what approving it now would grant."
    )


class AccessRequestList(BaseModel):
    """Access requests, newest first."""

    requests: list[AccessRequestOut] = Field(description="Your own requests and those you may approve.")


class SessionOut(BaseModel):
    """A live session (pgwire connection or running API query)."""

    id: str = Field(description="Session id (for DELETE /v1/sessions/{id}).")
    kind: Literal["pgwire", "http", "mysql"] = Field(description="pgwire or MySQL connection, or HTTP/MCP query.")
    principal: dict[str, Any] = Field(description="Who: subject, issuer, name, email, groups, method.")
    database: str = Field(description="Database alias.")
    role: str = Field(description="Privilege level in use.")
    db_login: str | None = Field(description="The short-lived database login.")
    source: str | None = Field(description="Client address.")
    lease_id: str | None = Field(description="The lease behind the session.")
    started_at: str = Field(description="When it started (ISO 8601).")
    expires_at: str | None = Field(description="When it ends at the latest.")
    statements: int = Field(description="Statements run so far.")
    replica: str | None = Field(None, description="The replica holding the session (`server.replica_name`).")


class SessionList(BaseModel):
    """Live sessions of every replica, oldest first."""

    sessions: list[SessionOut] = Field(description="Each live session.")


class SessionEnded(BaseModel):
    """A session was ended."""

    id: str = Field(description="The session ended.")
    ended: bool = Field(description="Always true.")
    replica: str | None = Field(None, description="The replica that held it.")


class AuditPage(BaseModel):
    """A page of audit records, newest first."""

    records: list[dict[str, Any]] = Field(description="Audit records as stored (with their hash).")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")
