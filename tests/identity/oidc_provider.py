"""Start the real OpenID provider (npm oidc-provider, tests/identity/oidc/) and drive its HTML pages."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

OIDC_DIR = Path(__file__).parent / "oidc"


def skip_reason() -> str | None:
    """Why the provider cannot run here, or None."""
    if shutil.which("node") is None:
        return "Node.js (node) is not on PATH; the oidc-provider tests need it"
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return "tests/identity/oidc/node_modules is missing: run `npm ci` in tests/identity/oidc"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Provider:
    """A running provider process; ``issuer`` is its URL."""

    def __init__(self) -> None:
        reason = skip_reason()
        if reason:
            pytest.skip(reason)
        port = _free_port()
        self.issuer = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            ["node", "provider.mjs", str(port)],  # node from PATH, as CI provides it
            cwd=OIDC_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            pytest.fail(f"oidc-provider did not start: {line!r}")
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).raise_for_status()
            except httpx.HTTPError:
                time.sleep(0.1)
            else:
                return
        pytest.fail("oidc-provider did not answer")

    def client_credentials(self, resource: str | None = None) -> str:
        """An access token of client ``svc``: for audience ``sqlgate``, or for ``resource`` when one is named."""
        form = {"grant_type": "client_credentials", "client_id": "svc", "client_secret": "svc-secret", "scope": "api"}
        answer = httpx.post(f"{self.issuer}/token", data=form | ({"resource": resource} if resource else {}))
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def published_kids(self) -> list[str]:
        return [key["kid"] for key in httpx.get(f"{self.issuer}/jwks").json()["keys"]]

    def admin(self, action: str) -> str:
        answer = httpx.post(f"{self.issuer}/admin/{action}")
        answer.raise_for_status()
        return str(answer.json()["kid"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((values.get("action", ""), {}))
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1][1][values["name"]] = values.get("value", "")


def drive_pages(http: httpx.Client, url: str, user: str, max_steps: int = 8) -> httpx.Response:
    """Open ``url`` and submit each page's first form (login as ``user``, consent) until a page has none."""
    response = http.get(url)
    for _ in range(max_steps):
        parser = _Forms()
        parser.feed(response.text)
        if not parser.forms:
            return response
        action, fields = parser.forms[0]
        fields = {**fields, "login": user, "password": "any"} if "login" in fields else fields
        response = http.post(urljoin(str(response.url), action), data=fields)
    pytest.fail("the provider's pages did not finish")
