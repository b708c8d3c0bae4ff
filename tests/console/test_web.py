"""The console over plain HTTP against a real gateway: sign-in, cookies, CSRF, headers, refusals, audit parity."""

from __future__ import annotations

import json
import re
import secrets

import httpx
import pytest
from sqlalchemy import select, update
from starlette.requests import Request

from sqlgate.audit.search import search
from sqlgate.audit.tables import audit_records
from sqlgate.console.web import CSP, secure_cookie
from tests.console.conftest import ALICE, DANA, HERE, OMAR, csrf_of, sign_in
from tests.gateway import DEMO_POLICY, RunningGateway

PAGES = ["/ui", "/ui/requests", "/ui/requests/new?database=demo", "/ui/sessions", "/ui/audit", "/ui/policy"]
ADMIN_PAGES = ["/ui/sessions", "/ui/audit", "/ui/audit/verify", "/ui/audit/session/x", "/ui/policy"]


@pytest.mark.parametrize("path", PAGES + ADMIN_PAGES)
def test_signed_out_visitor_is_sent_to_sign_in(http, path):
    answer = http.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login"
    assert "sqlgate_console" not in answer.text


def test_htmx_request_of_a_signed_out_visitor_redirects_the_whole_page(http):
    answer = http.get("/ui/requests", headers={"HX-Request": "true"})
    assert answer.status_code == 204
    assert answer.headers["hx-redirect"] == "/ui/login"


def test_sign_in_page_has_the_dev_form_and_strict_headers(http):
    page = http.get("/ui/login")
    assert page.status_code == 200
    for label in ('<label for="user">User</label>', '<label for="groups">Groups</label>', ">Sign in</button>"):
        assert label in page.text
    assert page.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP
    assert "unsafe-inline" not in CSP
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text
    assert " style=" not in page.text
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/ui" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback: a browser would drop a Secure cookie


def _request(url: str) -> Request:
    scheme, rest = url.split("://")
    host, _, port = rest.partition(":")
    return Request(
        {
            "type": "http",
            "scheme": scheme,
            "server": (host, int(port or 443)),
            "path": "/ui",
            "headers": [(b"host", rest.encode())],
        }
    )


@pytest.mark.parametrize(
    ("url", "secure"),
    [
        ("http://127.0.0.1:8480", False),
        ("http://localhost:8480", False),
        ("https://127.0.0.1:8480", True),
        ("http://gw.example.com:8480", True),
        ("https://sqlgate.example.com", True),
    ],
)
def test_cookie_is_secure_off_loopback(url, secure):
    assert secure_cookie(_request(url)) is secure


def test_sign_in_replaces_the_visitor_session_and_never_shows_a_token(http):
    anonymous = http.get("/ui/login")
    before = http.cookies["sqlgate_console"]
    answer = http.post("/ui/login", data={"user": "omar", "groups": "oncall", "csrf_token": csrf_of(anonymous.text)})
    assert answer.status_code == 303
    after = http.cookies["sqlgate_console"]
    assert after != before  # a session id known before sign-in is never promoted
    page = http.get("/ui")
    assert "omar" in page.text
    assert "eyJ" not in page.text  # no JWT in the page
    assert "eyJ" not in answer.headers.get("location", "")


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/ui/login", {"user": "mallory", "groups": "sqlgate-admins"}),
        ("/ui/logout", {}),
        ("/ui/requests", {"database": "demo", "role": "write", "reason": "x"}),
        ("/ui/requests/abc/approve", {}),
        ("/ui/requests/abc/deny", {"comment": "no"}),
        ("/ui/sessions/abc/end", {}),
    ],
)
def test_posts_without_the_csrf_token_are_refused(http, path, data):
    sign_in(http, DANA)
    for extra in ({}, {"csrf_token": "forged"}):
        answer = http.post(path, data={**data, **extra})
        assert answer.status_code == 403, (path, answer.text)
        assert "security token" in answer.text
    assert "dana" in http.get("/ui").text  # still signed in: the refused post changed nothing


def test_a_post_from_another_origin_is_refused_even_with_the_token(http):
    token = sign_in(http, DANA)
    answer = http.post("/ui/logout", data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert "another site" in answer.text
    assert http.get("/ui").status_code == 200


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_non_admin_is_refused_admin_pages(http, path):
    sign_in(http, ALICE)
    answer = http.get(path)
    assert answer.status_code == 403
    assert "is for members of" in answer.text
    assert "Sessions</a>" not in answer.text  # and the navigation does not offer them


def test_non_admin_cannot_end_a_session_even_with_a_token(http):
    token = sign_in(http, ALICE)
    answer = http.post("/ui/sessions/anything/end", data={"csrf_token": token})
    assert answer.status_code == 403


def test_sign_out_forgets_the_session_on_the_server(http):
    token = sign_in(http, OMAR)
    old = http.cookies["sqlgate_console"]
    answer = http.post("/ui/logout", data={"csrf_token": token})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?signed_out"
    assert "You have signed out." in http.get(answer.headers["location"]).text
    assert http.cookies["sqlgate_console"] != old
    with httpx.Client(base_url=str(http.base_url), cookies={"sqlgate_console": old}) as replay:
        assert replay.get("/ui").status_code == 303  # the old cookie value no longer signs anyone in


def test_dev_sign_in_refuses_bad_names(http):
    page = http.get("/ui/login")
    answer = http.post("/ui/login", data={"user": " ", "groups": "", "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 400
    assert "Cannot sign in" in answer.text


def test_static_assets(http):
    js = http.get("/ui/static/htmx.min.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert http.get("/ui/static/console.css").headers["content-type"].startswith("text/css")
    assert http.get("/ui/static/console.js").status_code == 200
    assert http.get("/ui/static/htmx.LICENSE").status_code == 404
    assert http.get("/ui/static/..%2Fweb.py").status_code == 404


def test_vendored_htmx_is_the_npm_package():
    package = HERE / "node_modules" / "htmx.org"
    if not package.exists():
        pytest.skip("the htmx.org npm package is missing: run npm ci in tests/console (needs Node.js)")
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"]["htmx.org"]
    assert json.loads((package / "package.json").read_text())["version"] == wanted
    vendored = HERE.parent.parent / "src" / "sqlgate" / "console" / "static" / "htmx.min.js"
    assert vendored.read_bytes() == (package / "dist" / "htmx.min.js").read_bytes()


def test_request_steps_from_the_console_are_audited_like_the_api(gateway, http):
    """A request filed in the console and one filed over the API leave records of the same shape."""
    token = sign_in(http, OMAR)
    filed = http.post(
        "/ui/requests",
        data={"database": "demo", "role": "write", "duration": "30m", "reason": "console parity", "csrf_token": token},
    )
    assert filed.status_code == 303
    assert "Request filed: write on demo for 30m." in http.get("/ui/requests").text
    api_token = gateway.token("omar", ("oncall",))
    created = httpx.post(
        f"{gateway.http_url}/v1/requests",
        json={"database": "demo", "role": "write", "duration": "30m", "reason": "api parity"},
        headers={"Authorization": f"Bearer {api_token}"},
    )
    assert created.status_code == 201, created.text
    admin = {"Authorization": f"Bearer {gateway.token('dana', ('auditors',))}"}
    records = httpx.get(
        f"{gateway.http_url}/v1/audit", params={"type": "request.create", "who": "omar"}, headers=admin
    ).json()["records"]
    by_reason = {record["reason"]: record for record in records}
    console, api = by_reason["console parity"], by_reason["api parity"]
    assert set(console) == set(api)
    assert set(console["data"]) == set(api["data"])
    assert (console["outcome"], console["data"]["duration"]) == (api["outcome"], api["data"]["duration"])


def test_requester_cannot_approve_their_own_request(http):
    token = sign_in(http, OMAR)  # omar is in dba, the approvers' group, too
    http.post(
        "/ui/requests",
        data={"database": "demo", "role": "write", "duration": "1h", "reason": "own", "csrf_token": token},
    )
    page = http.get("/ui/requests").text
    assert ">Approve</button>" not in page
    own = re.findall(r"/ui/requests/([0-9a-f]{32})/approve", page)
    assert own == []
    mine = re.search(r"<h2 id=\"mine-title\">.*", page, re.DOTALL)
    assert mine is not None
    assert "own" in mine.group(0)


def test_approve_and_deny_by_an_approver(gateway, http):
    requester = httpx.Client(base_url=gateway.http_url)
    token = sign_in(requester, ("rita", "oncall"))
    for reason in ("please approve", "please deny"):
        requester.post(
            "/ui/requests",
            data={"database": "demo", "role": "write", "duration": "45m", "reason": reason, "csrf_token": token},
        )
    approver_token = sign_in(http, DANA)
    inbox = http.get("/ui/requests").text
    ids = {
        reason: rid
        for rid, reason in re.findall(
            r'<article class="request" aria-labelledby="req-([0-9a-f]+)">.*?<dd>(please \w+)</dd>', inbox, re.DOTALL
        )
    }
    assert set(ids) >= {"please approve", "please deny"}
    approved = http.post(
        f"/ui/requests/{ids['please approve']}/approve", data={"csrf_token": approver_token, "comment": "go ahead"}
    )
    assert approved.status_code == 303
    assert "Approved rita: write on demo, until" in http.get("/ui/requests").text
    refused = http.post(f"/ui/requests/{ids['please deny']}/deny", data={"csrf_token": approver_token})
    assert refused.status_code == 303
    assert "Not denied:" in http.get("/ui/requests").text  # a denial needs its comment (the service says so)
    denied = http.post(
        f"/ui/requests/{ids['please deny']}/deny", data={"csrf_token": approver_token, "comment": "not now"}
    )
    assert denied.status_code == 303
    assert "Denied rita: write on demo." in http.get("/ui/requests").text
    mine = requester.get("/ui/requests").text
    assert "state-approved" in mine
    assert "not now" in mine
    assert "go ahead" in mine  # the approval's comment
    access = requester.get("/ui").text
    assert 'badge ok">allowed' in access  # the approved grant shows up in My access
    requester.close()


def test_chain_badge_turns_broken_with_the_first_problem(pg_server, pg_database, tmp_path):
    """An altered stored record: the audit page's badge says broken and names the record, as `audit verify` would."""
    own = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    try:
        with httpx.Client(base_url=own.http_url) as auditor:
            sign_in(auditor, DANA)
            intact = auditor.get("/ui/audit/verify", headers={"HX-Request": "true"})
            assert "Audit chain intact" in intact.text
            assert "<html" not in intact.text  # htmx gets the badge alone
            store = own.gateway.services.store

            async def alter():
                async with store.begin() as conn:
                    row = (await conn.execute(select(audit_records.c.id).order_by(audit_records.c.id))).first()
                    body = audit_records.c.body
                    await conn.execute(
                        update(audit_records).where(audit_records.c.id == row.id).values(body=body + " ")
                    )

            own.call(alter())
            assert "Audit chain intact" in auditor.get("/ui/audit/verify").text  # a minute-old report is reused
            broken = auditor.get("/ui/audit/verify?fresh=true")
            assert broken.status_code == 200
            assert "Audit chain broken" in broken.text
            assert re.search(r"First problem: altered at chain [\w-]+, record 1:", broken.text), broken.text
    finally:
        own.stop()


def test_an_unknown_console_path_is_a_page(http):
    answer = http.get("/ui/nothing/here")
    assert answer.status_code == 404
    assert "There is no console page at /ui/nothing/here." in answer.text
    assert answer.headers["content-security-policy"] == CSP
    assert http.get("/ui/").headers["location"] == "/ui"


def test_the_origin_may_differ_in_scheme_only(http):
    """A proxy that ends TLS in front of the gateway: the browser's origin is https, the request http."""
    token = sign_in(http, OMAR)
    host = http.base_url.netloc.decode()
    answer = http.post("/ui/logout", data={"csrf_token": token}, headers={"Origin": f"https://{host}"})
    assert answer.status_code == 303


def test_a_console_sign_in_is_audited_like_any_token(gateway, http):
    page = http.get("/ui/login")
    http.post("/ui/login", data={"user": "sam", "groups": "analysts", "csrf_token": csrf_of(page.text)})
    services = gateway.gateway.services
    gateway.call(services.audit.flush())
    found = gateway.call(search(services.store, type="auth.*", who="sam"))
    assert [(r["type"], r["outcome"], r["data"]["protocol"]) for r in found.records] == [
        ("auth.success", "success", "console")
    ]
    assert found.records[0]["principal"]["groups"] == ["analysts"]


def test_a_cross_site_arrival_without_the_cookie_opens_the_page_again_from_here(http):
    answer = http.get("/ui/requests?x=1&y=2", headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 200
    assert '<meta http-equiv="refresh" content="0; url=/ui/requests?x=1&amp;y=2">' in answer.text
    assert "set-cookie" not in answer.headers  # the browser's sign-in cookie is left alone
    same_site = http.get("/ui/requests", headers={"Sec-Fetch-Site": "same-origin"})
    assert same_site.status_code == 303  # and from this site, a visitor without a cookie goes to sign in
