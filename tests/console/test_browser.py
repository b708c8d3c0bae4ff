"""The console in a real browser (Debian's Chromium under Playwright), with axe-core on every page.

Three people sign in with the dev issuer's form: omar (on call, also in the approvers' group)
asks for write access, dana (approver, administrator, auditor) approves it, alice (analyst) is
refused the admin pages. dana ends alice's live psql session from the sessions page and psql
receives 57P01 with the reason; dana searches the audit log, follows the session's timeline and
sees the chain verify; the explain form agrees with `sqlgate policy explain`.

Every page visited is checked: no serious or critical axe-core violation, no console error (a
Content-Security-Policy violation is one), no sideways scrolling at a phone's width; and its
screenshot is saved (under docs/console/, shown in README, when SQLGATE_SCREENSHOTS=docs/console;
elsewhere in the temporary folder, so a test run leaves the tree clean).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from sqlgate.cli import app
from tests.console.conftest import ALICE, AXE, DANA, OMAR, SCREENSHOTS

PSQL = Path("/usr/bin/psql")
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class Person:
    """One person's browser (own cookies), with the checks run on every page they see."""

    def __init__(self, browser: Any, gateway: Any, person: tuple[str, str] | None) -> None:
        if not AXE.exists():
            pytest.skip("the axe-core npm package is missing: run npm ci in tests/console (needs Node.js)")
        self.base = gateway.http_url
        self.context = browser.new_context(viewport=LAPTOP, base_url=self.base)
        self.context.add_init_script(path=str(AXE))  # injected by the browser, so the page's CSP does not apply
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.person = person

    def sign_in(self, screenshot: str | None = None) -> None:
        """Sign in with the dev issuer's form (User, Groups, Sign in)."""
        from playwright.sync_api import expect  # noqa: PLC0415 - Playwright is imported where Chromium exists

        assert self.person is not None
        user, groups = self.person
        self.page.goto("/ui/login")
        if screenshot:
            self.check(screenshot)
        self.page.get_by_label("User").fill(user)
        self.page.get_by_label("Groups").fill(groups)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("heading", name="My access")).to_be_visible()

    def check(self, name: str | None = None) -> None:
        """axe-core (no serious or critical violation), no console error, fits a phone; screenshot ``name``."""
        self.page.wait_for_load_state("networkidle")
        violations = self.page.evaluate(
            """async () => {
                const result = await axe.run(document, {resultTypes: ['violations']});
                return result.violations
                    .filter(v => v.impact === 'serious' || v.impact === 'critical')
                    .map(v => `${v.id} (${v.impact}): ${v.nodes.map(n => n.target.join(' ')).join(', ')}`);
            }"""
        )
        assert violations == [], f"{self.page.url}: {violations}"
        assert self.errors == [], f"{self.page.url}: {self.errors}"
        if name:
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        self.page.set_viewport_size(PHONE)
        try:
            overflow = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            wide = self.page.evaluate(
                """() => [...document.querySelectorAll('body *')]
                    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                    .filter(e => !e.closest('.table-wrap'))
                    .slice(0, 8).map(e => `${e.tagName}.${e.className}#${e.id}`)"""
            )
            assert overflow <= 1, f"{self.page.url} scrolls sideways by {overflow}px at a phone's width: {wide}"
            if name == "access":
                self.page.screenshot(path=str(SCREENSHOTS / "access-phone.png"), full_page=True)
        finally:
            self.page.set_viewport_size(LAPTOP)

    def csrf(self) -> str:
        """The CSRF token of the page shown."""
        return str(self.page.locator("input[name=csrf_token]").first.get_attribute("value"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def people(browser, gateway):
    """A factory of signed-out browsers, closed after the test."""
    made: list[Person] = []

    def make(person: tuple[str, str] | None = None) -> Person:
        made.append(Person(browser, gateway, person))
        return made[-1]

    yield make
    for person in made:
        person.close()


def test_request_approve_loop(gateway, people):
    from playwright.sync_api import expect  # noqa: PLC0415

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    omar = people(OMAR)
    omar.sign_in(screenshot="login")
    omar.check("access")
    omar.page.get_by_role("link", name="Request access: write on demo").click()
    expect(omar.page.get_by_role("heading", name="Request access to demo")).to_be_visible()
    omar.check("request-form")
    omar.page.get_by_label("Role").select_option("write")
    omar.page.get_by_label("Duration").fill("1h")
    omar.page.get_by_label("Reason").fill("fix order 42")
    omar.page.get_by_role("button", name="Request", exact=True).click()
    expect(omar.page.get_by_text("Request filed: write on demo for 1h.")).to_be_visible()
    expect(omar.page.get_by_role("button", name="Approve")).to_have_count(0)  # never on a request of one's own
    omar.check()

    dana = people(DANA)
    dana.sign_in()
    dana.page.goto("/ui/requests")
    request = dana.page.locator("article.request", has_text="omar asks for write on demo")
    expect(request).to_have_count(1)
    expect(request.get_by_text("fix order 42")).to_be_visible()
    expect(request.get_by_text("Approving now grants")).to_be_visible()  # the service's preview
    dana.check("requests-inbox")
    request_id = str(request.get_attribute("aria-labelledby")).removeprefix("req-")

    # a decision whose form lost its CSRF token is refused, and the refusal replaces the page's main part
    request.get_by_label("Comment", exact=True).fill("stale form")
    request.locator("form.deny input[name=csrf_token]").evaluate("input => { input.value = 'forged'; }")
    request.get_by_role("button", name="Deny").click()
    expect(dana.page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(dana.page.get_by_text("missing its security token")).to_be_visible()
    assert dana.errors == ["Failed to load resource: the server responded with a status of 403 (Forbidden)"]
    dana.errors.clear()
    dana.page.goto("/ui/requests")
    request = dana.page.locator("article.request", has_text="omar asks for write on demo")
    expect(request).to_have_count(1)  # still pending: the refused post changed nothing

    # omar is in the approvers' group, yet a forged approval of his own request is refused by the service
    own = omar.page.request.post(f"/ui/requests/{request_id}/approve", form={"csrf_token": omar.csrf()})
    assert own.ok
    assert "you cannot approve or deny your own access request" in own.text()

    request.get_by_label("Comment (optional)").fill("fine for order 42")
    request.get_by_role("button", name="Approve").click()
    expect(dana.page.get_by_text("Approved omar: write on demo, until")).to_be_visible()
    expect(dana.page.locator("article.request", has_text="omar asks for write on demo")).to_have_count(0)
    dana.check()

    omar.page.goto("/ui/requests")
    expect(omar.page.locator("tr", has_text="fix order 42").get_by_text("approved")).to_be_visible()
    expect(omar.page.locator("tr", has_text="fix order 42")).to_contain_text("fine for order 42")
    omar.check("requests-mine")
    omar.page.goto("/ui")
    expect(omar.page.locator("tr", has_text="write").get_by_text("allowed")).to_be_visible()


def _psql(gateway, user: str, token: str) -> subprocess.Popen[str]:
    conninfo = f"host=127.0.0.1 port={gateway.pg_port} dbname=demo user={user} sslmode=disable"
    return subprocess.Popen(
        [str(PSQL), conninfo, "-X", "-q", "-v", "VERBOSITY=verbose", "-v", "ON_ERROR_STOP=1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": token, "PGCONNECT_TIMEOUT": "10"},
    )


def _live_session(gateway, subject: str) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {gateway.token('dana', ('sqlgate-admins',))}"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = httpx.get(f"{gateway.http_url}/v1/sessions", headers=admin).json()["sessions"]
        mine = [s for s in found if s["kind"] == "pgwire" and s["principal"]["subject"] == subject]
        if mine and mine[0]["statements"] >= 1:
            return mine[0]
        time.sleep(0.2)
    pytest.fail(f"{subject}'s psql session never showed up with its first statement")


def test_end_a_live_psql_session_then_find_it_in_the_audit_log(gateway, people):
    from playwright.sync_api import expect  # noqa: PLC0415

    if not PSQL.exists():
        pytest.skip(f"needs psql ({PSQL})")
    psql = _psql(gateway, "alice", gateway.token("alice", ("analysts",)))
    try:
        assert psql.stdin is not None
        psql.stdin.write("select 'console-probe-1';\n")
        psql.stdin.flush()
        session = _live_session(gateway, "alice")

        dana = people(DANA)
        dana.sign_in()
        dana.page.goto("/ui/sessions")
        row = dana.page.locator("tr", has_text="alice")
        expect(row).to_have_count(1)
        expect(row.get_by_role("cell", name="demo", exact=True)).to_be_visible()
        dana.check("sessions")
        row.get_by_placeholder("Reason").fill("ended from the console test")
        row.get_by_role("button", name="End session").click()
        expect(dana.page.get_by_text(f"Session {session['id']} ended.")).to_be_visible()
        expect(dana.page.locator("tr", has_text="alice")).to_have_count(0)

        psql.stdin.write("select 'console-probe-2';\n")
        psql.stdin.flush()
        _out, err = psql.communicate(timeout=30)
    finally:
        if psql.poll() is None:
            psql.kill()
            psql.communicate()
    assert "57P01" in err, err
    assert "ended from the console test" in err, err
    assert psql.returncode != 0
    _find_the_ended_session_in_the_audit_log(dana, session)


def _find_the_ended_session_in_the_audit_log(dana: Person, session: dict[str, Any]) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    dana.page.goto("/ui/audit")
    expect(dana.page.get_by_text("Audit chain intact")).to_be_visible()  # loaded by htmx after the page
    dana.page.get_by_label("Who").fill("alice")
    dana.page.get_by_label("Type").fill("session.end")
    dana.page.get_by_role("button", name="Search").click()
    ended = dana.page.locator("#audit-results tr", has_text="session.end")
    expect(ended).to_have_count(1)
    expect(ended.locator(".summary")).to_contain_text("ended from the console test")
    expect(dana.page).to_have_url(re.compile(r"/ui/audit\?.*who=alice"))  # in the address, so it can be shared
    dana.check("audit")
    ended.get_by_role("link", name="session timeline").click()
    expect(dana.page.get_by_role("heading", name=f"Session {session['id']}")).to_be_visible()
    steps = dana.page.locator("ol.timeline > li")
    expect(steps.filter(has_text="console-probe-1")).to_have_count(1)
    expect(steps.first).to_contain_text("session.start")
    expect(steps.last).to_contain_text("session.end")
    dana.check("audit-timeline")

    dana.page.goto("/ui/audit?type=request.*&outcome=denied")
    expect(dana.page.get_by_label("Outcome")).to_have_value("denied")
    dana.check()


def test_explain_form_agrees_with_the_cli(gateway, people):
    from playwright.sync_api import expect  # noqa: PLC0415

    dana = people(DANA)
    dana.sign_in()
    dana.page.goto("/ui/policy")
    expect(dana.page.get_by_role("heading", name="oncall-write-with-approval")).to_be_visible()
    asked = {"User": "alice", "Groups": "analysts", "Role": "write", "From": "10.1.2.3"}
    for label, value in asked.items():
        dana.page.get_by_label(label, exact=True).fill(value)
    dana.page.get_by_label("Database").select_option("demo")
    dana.page.get_by_role("button", name="Explain").click()
    result = dana.page.locator("#explain-result")
    expect(result.locator("p.decision")).to_be_visible()
    dana.check("policy")
    args = ["policy", "explain", "--as", "alice", "--group", "analysts", "--db", "demo", "--role", "write"]
    args += ["--from", "10.1.2.3", "--json", "-c", str(gateway.workdir / "sqlgate.yaml")]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    expected = json.loads(cli.stdout)
    assert expected["decision"]["outcome"] == "deny"
    expect(result.locator("p.decision .badge")).to_have_text(expected["decision"]["outcome"])
    expect(result.get_by_text(expected["decision"]["reason"], exact=True)).to_be_visible()
    rows = result.locator("tbody tr")
    expect(rows).to_have_count(len(expected["rules"]))
    for index, trace in enumerate(expected["rules"]):
        expect(rows.nth(index)).to_contain_text(trace["why"])


def test_visitors_and_non_admins_are_refused_and_sign_out_works(gateway, people):
    from playwright.sync_api import expect  # noqa: PLC0415

    visitor = people()
    for path in ("/ui/sessions", "/ui/audit", "/ui/policy", "/ui/requests", "/ui"):
        visitor.page.goto(path)
        assert visitor.page.url == f"{gateway.http_url}/ui/login"
        expect(visitor.page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(visitor.page.get_by_role("navigation")).to_have_count(0)  # nothing but the sign-in page
    forged = visitor.page.request.post("/ui/login", form={"user": "mallory", "groups": "sqlgate-admins"})
    assert forged.status == 403  # a sign-in post without the form's token

    alice = people(ALICE)
    alice.sign_in()
    expect(alice.page.get_by_role("link", name="Sessions")).to_have_count(0)
    for path in ("/ui/sessions", "/ui/audit", "/ui/policy"):
        answer = alice.page.goto(path)
        assert answer is not None
        assert answer.status == 403
        expect(alice.page.get_by_role("heading", name="Not allowed")).to_be_visible()
        assert alice.errors == ["Failed to load resource: the server responded with a status of 403 (Forbidden)"]
        alice.errors.clear()  # the browser reports the refusal it was meant to get
    alice.check("forbidden")
    assert alice.page.request.post("/ui/sessions/anything/end", form={}).status == 403  # no CSRF token
    assert alice.page.request.post("/ui/logout", form={}).status == 403
    alice.page.goto("/ui")
    expect(alice.page.get_by_role("heading", name="My access")).to_be_visible()  # those posts changed nothing

    alice.page.get_by_role("button", name="Sign out").click()
    expect(alice.page.get_by_text("You have signed out.")).to_be_visible()
    alice.check("signed-out")
    alice.page.goto("/ui")
    assert alice.page.url == f"{gateway.http_url}/ui/login"


def test_a_link_from_another_site_keeps_the_sign_in(gateway, people):
    """A link in chat or a webhook's message: the Strict cookie stays behind on that first request."""
    from playwright.sync_api import expect  # noqa: PLC0415

    dana = people(DANA)
    dana.sign_in()
    before = {c["name"]: c["value"] for c in dana.context.cookies()}["sqlgate_console"]
    elsewhere = f'<!doctype html><a href="{gateway.http_url}/ui/audit?type=auth.success">a link elsewhere</a>'
    chat = "http://chat.example.test/"
    dana.page.route(f"{chat}**", lambda route: route.fulfill(body=elsewhere, content_type="text/html"))
    dana.page.goto(chat)
    dana.page.get_by_role("link", name="a link elsewhere").click()
    expect(dana.page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(dana.page.get_by_label("Type")).to_have_value("auth.success")
    after = {c["name"]: c["value"] for c in dana.context.cookies()}["sqlgate_console"]
    assert after == before
