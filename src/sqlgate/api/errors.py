"""Errors of the HTTP query API, in the tree of :mod:`sqlgate.errors`.

::

    SqlgateError
    ├── AccessDenied      (sqlgate.errors)
    │   └── DirectLoginRefused  42501 / 403  a plain login for a grant with masks or guardrails (no direct_login)
    ├── BadRequest        22023 / 400  a parameter the schema cannot check is invalid (a time, a duration)
    ├── QueryFailed       <the database's SQLSTATE> / 400  the database refused the statement
    ├── QueryTimeout      57014 / 504  the statement ran past its timeout
    ├── SessionNotFound   42704 / 404  no live session has that id
    └── UnknownDatabase   3D000 / 404  no database has that alias

``QueryFailed`` carries the SQLSTATE the database answered with in ``code``;
the problem JSON shows it as ``sqlstate``, and a MySQL/MariaDB server's own error
number as ``error_code``.
"""

from __future__ import annotations

from sqlgate.errors import AccessDenied, SqlgateError


class QueryFailed(SqlgateError):
    """The database refused a statement sent through the API; ``code`` is its SQLSTATE."""

    sqlstate = "42000"
    http_status = 400

    def __init__(
        self, message: str, *, code: str | None, hint: str | None = None, error_code: int | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code or self.sqlstate
        self.error_code = error_code


class QueryTimeout(SqlgateError):
    """A statement ran longer than its timeout and was cancelled by the server."""

    sqlstate = "57014"
    http_status = 504


class BadRequest(SqlgateError):
    """A request parameter is invalid in a way its schema cannot say (a time, a duration)."""

    sqlstate = "22023"
    http_status = 400


class SessionNotFound(SqlgateError):
    """No live session has that id."""

    sqlstate = "42704"
    http_status = 404


class UnknownDatabase(SqlgateError):
    """No database of the gateway's settings has that alias."""

    sqlstate = "3D000"
    http_status = 404


class DirectLoginRefused(AccessDenied):
    """A plain database login was asked for a grant whose masks or guardrails it would bypass; ``rule`` names why."""

    def __init__(self, message: str, *, rule: str | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule
