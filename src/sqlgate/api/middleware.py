"""ASGI middleware of the API: a body-size limit and request metrics (pure ASGI: no per-request task)."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sqlgate.api import metrics
from sqlgate.api.ndjson import dumps
from sqlgate.api.problems import PROBLEM_MEDIA_TYPE, TYPE_BASE


class ApiMiddleware:
    """Refuses bodies over ``max_body_bytes`` (413 problem JSON) and counts requests by route and status."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request or connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            await _too_large(send, self.max_body_bytes)
            return
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive if length is not None else self._limited(receive), counting_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or ("/mcp" if scope["path"].startswith("/mcp") else "other")
            _counter(path, status).inc()

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` for a body without Content-Length: it ends the request once the body is too large."""
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    return {"type": "http.disconnect"}
            return message

        return limited


_COUNTERS: dict[tuple[str, int], Any] = {}


def _counter(path: str, status: int) -> Any:
    """The request counter child for (route, status), looked up once."""
    child = _COUNTERS.get((path, status))
    if child is None:
        child = _COUNTERS[(path, status)] = metrics.REQUESTS.labels(path, str(status))
    return child


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body: dict[str, Any] = {
        "type": TYPE_BASE + "content-too-large",
        "title": "Content Too Large",
        "status": 413,
        "detail": f"the request body is larger than {limit} bytes",
    }
    await send(
        {"type": "http.response.start", "status": 413, "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode())]}
    )
    await send({"type": "http.response.body", "body": dumps(body)})
