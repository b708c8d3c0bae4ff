"""The fast path of POST /v1/query answers exactly as the FastAPI route does, and steps aside for the rest."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx

from sqlgate.api import metrics
from sqlgate.api.fastpath import QueryFastPath
from tests.api.conftest import bearer

ROUTE_ONLY = "application/vnd.sqlgate-test+json"
"""A JSON media type FastAPI accepts but the fast path leaves to the route."""


def post(client, token, body, content_type="application/json", **headers):
    """POST /v1/query with a raw JSON body and ``content_type``."""
    sent = {"Content-Type": content_type, **headers, **(bearer(token) if token else {})}
    return client.post("/v1/query", headers=sent, content=json.dumps(body))


def answer(response):
    """Status, the headers a client reads, and the body without its timing."""
    body = response.json()
    if isinstance(body, dict):
        body.pop("duration_ms", None)
    headers = {name: response.headers.get(name) for name in ("content-type", "www-authenticate")}
    return response.status_code, headers, body


def test_fast_path_and_route_answer_alike(gateway, client):
    """Rows, SQL errors, policy and guardrail refusals and token errors: the same answer either way."""
    erin, alice = gateway.token("erin", ("engineers",)), gateway.token("alice", ("analysts",))
    cases = [
        (erin, {"database": "demo", "sql": "SELECT id, name FROM customers WHERE id <= $1", "params": [2]}),
        (alice, {"database": "demo", "sql": "SELECT id, email, ssn FROM customers WHERE id = 1"}),
        (erin, {"database": "demo", "sql": "SELECT nope FROM customers"}),
        (erin, {"database": "nope", "sql": "SELECT 1"}),
        (alice, {"database": "demo", "sql": "DELETE FROM orders WHERE id = 1"}),
        (gateway.token("mallory", ("interns",)), {"database": "demo", "sql": "SELECT 1"}),
        ("not-a-jwt", {"database": "demo", "sql": "SELECT 1"}),
        (None, {"database": "demo", "sql": "SELECT 1"}),
        (None, {"database": "demo"}),
        (erin, {"database": "demo", "sql": "SELECT 1", "max_rows": 0}),
    ]
    for token, body in cases:
        fast, route = post(client, token, body), post(client, token, body, ROUTE_ONLY)
        assert answer(fast) == answer(route), body


def test_fast_path_counts_requests_under_the_route(gateway, client):
    """Requests it serves are counted under ``/v1/query`` like the route's."""
    token = gateway.token("erin", ("engineers",))
    before = _served("/v1/query", "200")
    assert post(client, token, {"database": "demo", "sql": "SELECT 1"}).status_code == 200
    assert _served("/v1/query", "200") == before + 1


def test_bodies_it_does_not_serve_reach_the_route(gateway, client):
    """Chunked bodies are read whole; invalid JSON, ``null`` and NDJSON are answered by the route."""
    token = gateway.token("erin", ("engineers",))
    body = json.dumps({"database": "demo", "sql": "SELECT 1 AS one"}).encode()
    chunked = client.post(
        "/v1/query",
        headers={**bearer(token), "Content-Type": "application/json"},
        content=iter([body[:10], body[10:]]),
    )
    assert chunked.status_code == 200, chunked.text
    assert chunked.json()["rows"] == [[1]]
    for raw in (b"{not json", b"null", b""):
        response = client.post("/v1/query", headers={**bearer(token), "Content-Type": "application/json"}, content=raw)
        assert response.status_code == 400, raw
        assert response.json()["type"].endswith("/invalid-request"), raw
    streamed = post(client, token, {"database": "demo", "sql": "SELECT 1 AS one"}, Accept="application/x-ndjson")
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    assert streamed.text.splitlines()[1] == "[1]"


def _served(route: str, status: str) -> float:
    for family in metrics.REQUESTS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels == {"route": route, "status": status}:
                return sample.value
    return 0.0


async def test_an_unexpected_failure_is_a_logged_500_problem(caplog):
    """The fast path sits outside FastAPI's error middleware: it answers a bug itself, never with a traceback."""

    class Broken:
        async def authenticate(self, *_args):
            return object()

        async def prepare(self, *_args):
            raise RuntimeError("a bug with a secret-free message")

    state = SimpleNamespace(services=SimpleNamespace(authenticator=Broken()), engine=Broken())

    async def route(*_args):  # the fast path must not hand this request over
        raise AssertionError("handed to the route")

    app = QueryFastPath(route, state)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
        response = await http.post("/v1/query", json={"database": "demo", "sql": "SELECT 1"}, headers=bearer("t"))
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in response.text
    assert "POST /v1/query failed" in caplog.text
