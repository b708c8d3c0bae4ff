"""The exceptions sqlgate raises, and how each one reaches a caller.

Every error a caller can see derives from :class:`SqlgateError` and carries the
SQLSTATE a PostgreSQL client receives and the HTTP status the API answers with,
so the proxy and the API translate errors the same way::

    SqlgateError                      XX000 / 500
    ├── ConfigError                   F0000 / 500  bad settings or policy file
    ├── IdentityError                 28000 / 401  no usable identity
    │   └── TokenRejected             28P01 / 401  a token failed verification
    ├── AccessDenied                  42501 / 403  policy said no
    │   ├── ApprovalRequired          42501 / 403  policy says yes, after approval
    │   └── GuardrailViolation        42501 / 403  a statement broke a rule
    ├── AccessRequestError            22023 / 400  an access request that cannot be filed as given
    │   ├── RequestNotFound           42704 / 404  no access request has that id
    │   └── RequestConflict           55000 / 409  the request is no longer pending (or already approved by you)
    ├── BrokerError                   58000 / 503  could not mint or revoke a login
    ├── LeaseEnded                    57P01 / 403  the grant behind a session ended
    ├── UpstreamError                 08006 / 502  the target database failed
    │   ├── UpstreamRefused           (server's) / 502  the server refused our login (pgwire.upstream_handshake)
    │   └── ScramError                08006 / 502  the server failed SCRAM's proof (pgwire.scram)
    ├── StoreError                    58000 / 503  the state database failed
    ├── AuditError                    58000 / 503  an audit record could not be written
    │   └── AuditQueueFull            53000 / 503  the statement audit queue is full
    ├── ProtocolError                 08P01 / 400  malformed bytes from a client
    ├── NotReady                      0A000 / 501  a command whose feature has not landed
    ├── EmbeddedPostgresError         XX000 / 500  the embedded server failed (embedded)
    └── ConnectorError                (varies)     the connector library's errors (connector.errors), each
        ├── TokenUnavailable / TokenRefused        with ``cause`` "token",
        ├── GatewayUnavailable / GatewayDenied     "gateway",
        ├── DatabaseUnavailable                    or "database",
        ├── EndUserRejected                        (an end user's token in a request)
        └── StartupError                           (start-up failed; wraps one of the above)

Errors that belong to one package are defined there and drawn here, so this is
the one map of everything a caller can be told.

Third-party exceptions are translated at the boundary that calls the library
(``raise TokenRejected(...) from exc``); nothing above that boundary needs to
know which library failed.
"""

from __future__ import annotations

from typing import ClassVar


class SqlgateError(Exception):
    """Base class of every sqlgate error a caller can see."""

    sqlstate: ClassVar[str] = "XX000"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class ConfigError(SqlgateError):
    """A settings or policy file is invalid; ``problems`` lists each mistake."""

    sqlstate = "F0000"

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return "\n".join([self.message, *(f"  {p}" for p in self.problems)])


class IdentityError(SqlgateError):
    """The caller presented no identity sqlgate can use."""

    sqlstate = "28000"
    http_status = 401


class TokenRejected(IdentityError):
    """A token was presented and failed verification; ``reason`` says why."""

    sqlstate = "28P01"


class AccessDenied(SqlgateError):
    """Policy refused the request; the message says which rule or why none matched."""

    sqlstate = "42501"
    http_status = 403


class ApprovalRequired(AccessDenied):
    """Policy grants the request only after an approver agrees."""


class GuardrailViolation(AccessDenied):
    """A statement is refused by a guardrail of the caller's grant."""


class AccessRequestError(SqlgateError):
    """An access request cannot be filed or decided as given; the message says what to change."""

    sqlstate = "22023"
    http_status = 400


class RequestNotFound(AccessRequestError):
    """No access request has that id."""

    sqlstate = "42704"
    http_status = 404


class RequestConflict(AccessRequestError):
    """The access request is not in a state that allows the step (e.g. already decided)."""

    sqlstate = "55000"
    http_status = 409


class BrokerError(SqlgateError):
    """A database login could not be minted, renewed or revoked."""

    sqlstate = "58000"
    http_status = 503


class LeaseEnded(SqlgateError):
    """The lease or grant behind a session ended; the session must close."""

    sqlstate = "57P01"
    http_status = 403


class UpstreamError(SqlgateError):
    """The target database refused or dropped a connection."""

    sqlstate = "08006"
    http_status = 502


class StoreError(SqlgateError):
    """The state database could not be read or written."""

    sqlstate = "58000"
    http_status = 503


class AuditError(SqlgateError):
    """An audit record could not be written; the action it records must not go on."""

    sqlstate = "58000"
    http_status = 503


class AuditQueueFull(AuditError):
    """The bounded audit queue is full and the caller cannot wait (``audit.on_full: block``)."""

    sqlstate = "53000"


class ProtocolError(SqlgateError):
    """A client sent bytes that break the protocol."""

    sqlstate = "08P01"
    http_status = 400


class NotReady(SqlgateError):
    """A command or feature whose implementation has not landed yet."""

    sqlstate = "0A000"
    http_status = 501
