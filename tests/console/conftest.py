"""A gateway for the console tests, signed-in HTTP clients, and Chromium driven by Playwright.

The browser is Debian's Chromium at /usr/bin/chromium (`.ci/run` installs the `chromium`
package); Playwright's own browser downloads are never used. axe-core comes from
``tests/console/node_modules`` (``npm ci`` here).
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway import DEMO_POLICY, RunningGateway

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(os.environ.get("SQLGATE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "sqlgate-console-screenshots")
"""Where the browser tests save each page; `SQLGATE_SCREENSHOTS=docs/console` refreshes README's pictures."""

# The people of the tests: a requester who is also in the approvers' group (so only the rule
# "never your own request" keeps them from approving it), an approver who administers and audits,
# and an analyst who does neither.
OMAR = ("omar", "oncall, dba")
DANA = ("dana", "dba, sqlgate-admins, auditors")
ALICE = ("alice", "analysts")


@pytest.fixture(scope="module")
def gateway(pg_server, tmp_path_factory) -> Iterator[RunningGateway]:
    """One gateway (demo policy, dev issuer on) for a test module; a fresh database of its own."""
    database = f"t_{secrets.token_hex(6)}"
    pg_server.psql(f'CREATE DATABASE "{database}"')
    running = RunningGateway(pg_server, tmp_path_factory.mktemp("console"), DEMO_POLICY, database, secrets.token_hex(3))
    yield running
    running.stop()
    pg_server.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: httpx.Client, person: tuple[str, str]) -> str:
    """Sign ``client`` in with the dev issuer's form; returns the session's CSRF token."""
    page = client.get("/ui/login")
    assert page.status_code == 200
    user, groups = person
    answer = client.post("/ui/login", data={"user": user, "groups": groups, "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui"
    return csrf_of(client.get("/ui").text)


@pytest.fixture
def http(gateway) -> Iterator[httpx.Client]:
    """A cookie-keeping client for the gateway (not signed in)."""
    with httpx.Client(base_url=gateway.http_url, timeout=60) as client:
        yield client


def need_chromium() -> None:
    """Skip, naming the component, unless Debian's Chromium is installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (Debian package chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium under Playwright (headless, Debian's binary)."""
    need_chromium()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only where Chromium exists

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()
