"""RFC 9457 problem details: every error the API returns has this one shape."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from sqlgate.errors import AccessDenied, SqlgateError

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://sqlgate.dev/problems/"


class Problem(BaseModel):
    """An error, as RFC 9457 problem JSON with sqlgate's extension members."""

    type: str = Field(description="URI naming the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="What went wrong, for a person.")
    sqlstate: str | None = Field(None, description="The SQLSTATE a PostgreSQL client would see.")
    rule: str | None = Field(None, description="The policy rule or guardrail that decided, when one did.")
    error_code: int | None = Field(
        None, description="The MySQL/MariaDB error number, when such a database refused the statement."
    )
    errors: list[dict[str, Any]] | None = Field(None, description="Each invalid field of a request body.")


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": HTTPStatus(status).phrase}
    for status in (400, 401, 403, 404, 409, 413, 422, 500, 502, 503, 504)
}


def problem_response(status: int, detail: str, *, kind: str | None = None, **extra: Any) -> JSONResponse:
    """A problem+json response; ``kind`` names the problem type (defaults from the status)."""
    phrase = HTTPStatus(status).phrase
    slug = kind or phrase.lower().replace(" ", "-")
    body = Problem(type=TYPE_BASE + slug, title=phrase, status=status, detail=detail, **extra)
    headers = {"WWW-Authenticate": 'Bearer realm="sqlgate"'} if status == 401 else None
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _kind(exc: SqlgateError) -> str:
    name = type(exc).__name__
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


def _fields(exc: SqlgateError) -> dict[str, Any]:
    """Problem members of ``exc``: ``sqlstate`` (the database's own, when it refused), ``rule``, ``error_code``."""
    rule = getattr(exc, "rule", None) if isinstance(exc, AccessDenied) else None
    sqlstate = getattr(exc, "code", None) or exc.sqlstate
    return {"kind": _kind(exc), "sqlstate": sqlstate, "rule": rule, "error_code": getattr(exc, "error_code", None)}


def problem_body(exc: SqlgateError) -> dict[str, Any]:
    """``exc`` as problem JSON data (for errors inside a stream that has already started)."""
    fields = _fields(exc)
    phrase = HTTPStatus(exc.http_status).phrase
    body = Problem(type=TYPE_BASE + fields.pop("kind"), title=phrase, status=exc.http_status, detail=str(exc), **fields)
    return body.model_dump(exclude_none=True)


def error_response(exc: SqlgateError) -> JSONResponse:
    """The problem response for ``exc``."""
    return problem_response(exc.http_status, str(exc), **_fields(exc))


async def _sqlgate_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SqlgateError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(part) for part in error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return problem_response(400, "the request body or parameters are invalid", kind="invalid-request", errors=errors)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(exc.status_code, str(exc.detail))


def install(app: FastAPI) -> None:
    """Make every error of ``app`` a problem+json response."""
    app.add_exception_handler(SqlgateError, _sqlgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
