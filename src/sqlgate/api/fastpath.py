"""``POST /v1/query`` served without FastAPI's middleware, routing and dependency solving, for plain JSON.

On a point select, routing through the included routers, solving the route's
dependencies and building Request/Response objects cost more than the
statement itself (issue 8). This pure ASGI layer serves the common request --
a JSON body, a JSON answer -- with the very steps of the route in
:mod:`sqlgate.api.routes.query` (same token check, same
:meth:`~sqlgate.api.query.QueryEngine.prepare` and ``run``, same problem JSON
for every refusal), and hands anything else to the route with the body
replayed: an NDJSON ``Accept``, another content type, a body that is not JSON
or not a valid :class:`~sqlgate.api.models.QueryRequest` (the route answers
with its own 400). The route stays the reference and the OpenAPI operation.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sqlgate.access.authenticate import bearer
from sqlgate.api import ndjson
from sqlgate.api.models import QueryRequest
from sqlgate.api.problems import error_response, problem_response
from sqlgate.api.routes.query import statement_of
from sqlgate.api.state import ApiState
from sqlgate.errors import SqlgateError

PATH = "/v1/query"
_INTERNAL = "internal error in the gateway; the administrator can find it in its log"
log = logging.getLogger(__name__)
_HEADERS = (b"authorization", b"content-type", b"accept")


class _Route:
    """What ApiMiddleware reads from ``scope["route"]`` to label the request metrics."""

    path = PATH


_ROUTE = _Route()


class QueryFastPath:
    """Serves plain JSON ``POST /v1/query`` requests itself; passes every other request to ``app``."""

    def __init__(self, app: ASGIApp, api: ApiState) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request or connection."""
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if not _plain_json(headers):
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        replay = _replaying(messages, receive)
        data = _json(body)
        if data is None:  # no body, a body that is not JSON, or the client went away: the route answers
            await self.app(scope, replay, send)
            return
        try:
            answer = await self._answer(scope, headers, data)
        except SqlgateError as exc:
            scope["route"] = _ROUTE
            await error_response(exc)(scope, replay, send)
            return
        except Exception:  # outside FastAPI's error middleware: answer as it would, in problem JSON
            log.exception("POST %s failed", PATH)
            scope["route"] = _ROUTE
            await problem_response(500, _INTERNAL)(scope, replay, send)
            return
        if answer is None:
            await self.app(scope, replay, send)
            return
        scope["route"] = _ROUTE
        await _send_json(send, answer)

    async def _answer(self, scope: Scope, headers: dict[bytes, str], data: Any) -> bytes | None:
        """The JSON answer, as the route computes it; None when the body does not validate (the route says why).

        The token is checked before the body is validated, as FastAPI solves the route's dependencies first.
        """
        token = bearer(headers.get(b"authorization", ""))
        client = scope.get("client")
        principal = await self.api.services.access.authenticate(token, client[0] if client else None, protocol="http")
        try:
            body = QueryRequest.model_validate(data)
        except ValidationError:
            return None
        job = await self.api.engine.prepare(principal, statement_of(body))
        return ndjson.dumps(await self.api.engine.run(job))


def _headers(scope: Scope) -> dict[bytes, str]:
    """The first value of each header the fast path reads (names arrive lower-cased, as ASGI requires)."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _plain_json(headers: dict[bytes, str]) -> bool:
    """A JSON body (``application/json``, parameters aside) and no NDJSON in ``Accept``."""
    media_type = headers.get(b"content-type", "").partition(";")[0].strip().lower()
    return media_type == "application/json" and ndjson.MEDIA_TYPE not in headers.get(b"accept", "")


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The messages received and the whole body; None for the body when the client went away first."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first hands out ``messages`` again (for the route, when the fast path steps aside)."""
    pending = deque(messages)

    async def replay() -> Message:
        return pending.popleft() if pending else await receive()

    return replay


def _json(body: bytes | None) -> Any:
    """The parsed body; None when there is none or it is not JSON (``null`` itself is no QueryRequest either)."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:  # also NaN and Infinity, which the route's parser takes: it answers those
        return None


async def _send_json(send: Send, body: bytes) -> None:
    """A 200 ``application/json`` answer, with the headers the route's Response sends."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
