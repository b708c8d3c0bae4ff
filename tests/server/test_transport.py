"""The HTTP listener's loopback guard, at its seam: which (scheme, peer) pairs it refuses, and what a refusal says.

The end-to-end tests (through the real listener, from this machine's own address) are in test_https.py.
"""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sqlgate.api.transport import PlaintextGuard, PlaintextRule, is_loopback_peer

DEFAULT = PlaintextRule()
HTTPS_ONLY = PlaintextRule(require_tls=True)
BEHIND_A_TLS_PROXY = PlaintextRule(allow_plaintext=True)


@pytest.mark.parametrize(
    ("rule", "scheme", "peer", "refused"),
    [
        (DEFAULT, "http", "127.0.0.1", False),
        (DEFAULT, "http", "127.8.9.10", False),
        (DEFAULT, "http", "::1", False),
        (DEFAULT, "http", "::ffff:127.0.0.1", False),  # IPv4 loopback as a dual-stack socket reports it
        (DEFAULT, "http", "192.0.2.7", True),
        (DEFAULT, "http", "10.0.0.5", True),
        (DEFAULT, "http", "fd00::2", True),
        (DEFAULT, "http", "::ffff:10.0.0.5", True),
        (DEFAULT, "http", None, True),  # unknown peer: fail closed
        (DEFAULT, "http", "localhost", True),  # a name is not an address a socket reports
        (DEFAULT, "ws", "10.0.0.5", True),
        (DEFAULT, "https", "10.0.0.5", False),
        (DEFAULT, "wss", "10.0.0.5", False),
        (HTTPS_ONLY, "http", "127.0.0.1", True),
        (HTTPS_ONLY, "https", "127.0.0.1", False),
        (BEHIND_A_TLS_PROXY, "http", "10.0.0.5", False),
        (BEHIND_A_TLS_PROXY, "http", "127.0.0.1", False),
    ],
)
def test_which_requests_are_refused(rule, scheme, peer, refused):
    assert rule.refuses(scheme, peer) is refused


def test_loopback_peers():
    assert is_loopback_peer("127.0.0.1")
    assert is_loopback_peer("::ffff:127.0.0.1")
    assert not is_loopback_peer("::ffff:192.0.2.1")
    assert not is_loopback_peer("not an address")


class Counting:
    """A tiny real app that counts the requests it served."""

    def __init__(self) -> None:
        self.served = 0
        self.app = Starlette(routes=[Route("/v1/query", self.query, methods=["POST"])])

    async def query(self, request: Request) -> PlainTextResponse:
        await request.body()
        self.served += 1
        return PlainTextResponse("ran")


async def post(app: PlaintextGuard, client: tuple[str, int], base: str = "http://gw") -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url=base) as http:
        return await http.post("/v1/query", headers={"Authorization": "Bearer t0ken"}, json={"sql": "DELETE FROM t"})


async def test_a_refused_request_gets_a_problem_and_never_reaches_the_app():
    counting = Counting()
    guarded = PlaintextGuard(counting.app, DEFAULT)
    refused = await post(guarded, ("192.0.2.7", 40000))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["connection"] == "close"
    problem = refused.json()
    assert problem["type"] == "https://sqlgate.dev/problems/tls-required"
    assert problem["status"] == 403
    assert "use https://" in problem["detail"]
    assert "discard them" in problem["detail"]
    assert "t0ken" not in refused.text
    assert counting.served == 0
    assert (await post(guarded, ("127.0.0.1", 40000))).text == "ran"
    assert (await post(guarded, ("192.0.2.7", 40000), base="https://gw")).text == "ran"
    assert counting.served == 2


async def test_a_refusal_is_logged_without_the_token(caplog):
    guarded = PlaintextGuard(Counting().app, DEFAULT)
    with caplog.at_level("WARNING", logger="sqlgate.api.transport"):
        await post(guarded, ("192.0.2.7", 40000))
    assert "refused a plain-HTTP request from 192.0.2.7 to /v1/query" in caplog.text
    assert "t0ken" not in caplog.text
