"""Plain HTTP only from this machine: the HTTP listener's loopback guard.

The HTTP listener serves HTTPS and plain HTTP on one port (``server/http_listener.py``).
A plain-HTTP request from a client on another machine carries its token across the
network in the clear, so it is refused before any route sees it: a 403 problem saying
to use https, nothing done, the connection closed. ``api.allow_plaintext`` admits such
requests (behind a load balancer that terminates TLS); ``api.require_tls`` refuses plain
HTTP from loopback clients too. The PostgreSQL listener applies the same rule to its
clients (``proxy/connection.py``).

Requests relayed by a trusted local proxy are judged by what uvicorn's proxy-header
handling made of them: the scheme and client the proxy reports.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from sqlgate.api.problems import problem_response
from sqlgate.config import Settings, is_loopback

log = logging.getLogger(__name__)

TLS_SCHEMES = frozenset({"https", "wss"})
POLICY_VIOLATION = 1008  # WebSocket close code


@dataclass(frozen=True)
class PlaintextRule:
    """Which plain-HTTP requests the listener refuses (``api.require_tls``, ``api.allow_plaintext``)."""

    require_tls: bool = False
    allow_plaintext: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> PlaintextRule:
        """The rule ``settings`` configure."""
        return cls(require_tls=settings.api.require_tls, allow_plaintext=settings.api.allow_plaintext)

    def refuses(self, scheme: str, peer: str | None) -> bool:
        """True when a request over ``scheme`` from address ``peer`` (None: unknown) must be refused."""
        if scheme in TLS_SCHEMES:
            return False
        if self.require_tls:
            return True
        if self.allow_plaintext:
            return False
        return peer is None or not is_loopback_peer(peer)


def is_loopback_peer(address: str) -> bool:
    """True for a loopback address, IPv4-mapped ones (``::ffff:127.0.0.1``, a dual-stack socket's view) included.

    A peer is an address, never a name: ``localhost`` here is not loopback.
    """
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return is_loopback(address)


def refusal_detail(*, carried_token: bool) -> str:
    """What a refused client is told."""
    detail = (
        "sqlgate takes HTTP requests only over TLS from non-local clients: "
        "use https:// instead of http:// (the same port serves both)"
    )
    if carried_token:
        detail += "; the credentials it carried crossed the network unencrypted: discard them and get new ones"
    return detail


class PlaintextGuard:
    """ASGI middleware: refuses what ``rule`` refuses, before the app sees the request."""

    def __init__(self, app: ASGIApp, rule: PlaintextRule) -> None:
        self.app = app
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the request, or pass it on to the app."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        peer = _client_host(scope)
        if not self.rule.refuses(str(scope.get("scheme", "http")), peer):
            await self.app(scope, receive, send)
            return
        log.warning(
            "refused a plain-HTTP request from %s to %s: HTTPS required", peer or "an unknown client", _path(scope)
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": "use wss://"})
            return
        response = problem_response(403, refusal_detail(carried_token=_has_credentials(scope)), kind="tls-required")
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def _client_host(scope: Scope) -> str | None:
    client: Any = scope.get("client")
    return str(client[0]) if client else None


def _path(scope: Scope) -> str:
    return str(scope.get("path", ""))[:200]


def _has_credentials(scope: Scope) -> bool:
    names = {name.lower() for name, _value in scope.get("headers", [])}
    return bool(names & {b"authorization", b"cookie"})
