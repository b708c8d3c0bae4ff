"""``sqlgate login``: the OAuth 2.0 device authorization grant (RFC 8628), or code + PKCE on a loopback redirect.

The device flow needs nothing but a terminal. When the issuer does not offer
it (or ``--browser`` is given), the browser is sent to the authorization
endpoint and a one-shot server on ``127.0.0.1`` catches the redirect.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from sqlgate.config import IssuerConfig, Settings
from sqlgate.errors import IdentityError
from sqlgate.identity.client import CachedLogin, choose_issuer, login_from_response, save_login
from sqlgate.identity.deployment import resolve
from sqlgate.identity.jwt import show_untrusted
from sqlgate.identity.remote import DISCOVERY_PATH

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
BROWSER_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class LoginPrompt:
    """What the user must do: open ``url`` (and enter ``user_code`` for the device flow)."""

    text: str
    url: str
    user_code: str | None = None


Prompt = Callable[[LoginPrompt], None]


def run_login(  # noqa: PLR0913 # the browser, prompt and sleep are seams for tests
    settings: Settings,
    issuer: str | None = None,
    *,
    prefer_browser: bool = False,
    prompt: Prompt = lambda p: print(p.text),  # noqa: T201 # default for library use
    open_browser: Callable[[str], Any] = webbrowser.open,
    sleep: Callable[[float], None] = time.sleep,
) -> CachedLogin:
    """Sign in to an issuer from ``identity.issuers`` (it needs a ``client_id``) and cache the tokens.

    Of the access and ID tokens, the one whose audience the gateway accepts is kept: the issuer's ``audience``,
    else this gateway's id when it is known here (``public_url``, ``identity.deployment_id`` or ``data_dir``).
    """
    config = choose_issuer(resolve(settings, create=False), issuer)
    if not config.client_id:
        raise IdentityError(f"issuer {config.issuer} has no client_id to sign in with")
    with httpx.Client(timeout=10.0) as http:
        meta = _discover(http, config.issuer)
        token_endpoint = str(meta["token_endpoint"])
        try:
            if meta.get("device_authorization_endpoint") and not prefer_browser:
                body = _device_flow(http, meta, config, prompt, sleep)
            else:
                body = _pkce_flow(http, meta, config, prompt, open_browser)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise IdentityError(
                f"login failed: the identity provider answered unexpectedly ({show_untrusted(repr(exc))})"
            ) from None
    login = login_from_response(config, token_endpoint, body)
    save_login(login)
    return login


def _discover(http: httpx.Client, issuer: str) -> dict[str, Any]:
    try:
        response = http.get(issuer.rstrip("/") + DISCOVERY_PATH)
        response.raise_for_status()
        meta = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise IdentityError(f"cannot read the discovery document of {issuer}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("issuer") != issuer or "token_endpoint" not in meta:
        raise IdentityError(f"the discovery document of {issuer} is not usable")
    return meta


def _device_flow(
    http: httpx.Client, meta: dict[str, Any], config: IssuerConfig, prompt: Prompt, sleep: Callable[[float], None]
) -> dict[str, Any]:
    client_id = str(config.client_id)
    scope = " ".join(config.login_scopes)
    response = http.post(str(meta["device_authorization_endpoint"]), data={"client_id": client_id, "scope": scope})
    if response.status_code != 200:
        raise IdentityError(f"the identity provider refused the device login (HTTP {response.status_code})")
    grant = response.json()
    url = grant.get("verification_uri_complete") or grant["verification_uri"]
    prompt(LoginPrompt(f"Open {url} and confirm the code {grant['user_code']}", url, grant["user_code"]))
    interval = float(grant.get("interval", 5))
    deadline = time.monotonic() + float(grant.get("expires_in", 600))
    while time.monotonic() < deadline:
        sleep(interval)
        answer = http.post(
            str(meta["token_endpoint"]),
            data={"grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": client_id},
        )
        body: dict[str, Any] = answer.json()
        if answer.status_code == 200:
            return body
        error = body.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            raise IdentityError(f"device login failed: {show_untrusted(error) if error else answer.status_code}")
    raise IdentityError("device login timed out")


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def _pkce_flow(
    http: httpx.Client, meta: dict[str, Any], config: IssuerConfig, prompt: Prompt, open_browser: Callable[[str], Any]
) -> dict[str, Any]:
    client_id = str(config.client_id)
    if "authorization_endpoint" not in meta:
        raise IdentityError("the identity provider offers neither the device flow nor a browser login")
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    with _RedirectCatcher() as catcher:
        redirect_uri = f"http://127.0.0.1:{catcher.port}/callback"
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(config.login_scopes),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "prompt": "consent",
        }
        url = f"{meta['authorization_endpoint']}?{urlencode(query)}"
        prompt(LoginPrompt(f"Opening your browser; if it does not open, visit {url}", url))
        open_browser(url)
        params = catcher.wait(BROWSER_TIMEOUT)
    if params.get("state") != state:
        raise IdentityError("browser login failed: the state does not match")
    if "code" not in params:
        error = params.get("error")
        raise IdentityError(f"browser login failed: {show_untrusted(error) if error else 'no code returned'}")
    response = http.post(
        str(meta["token_endpoint"]),
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )
    if response.status_code != 200:
        raise IdentityError(f"browser login failed: the code exchange was refused (HTTP {response.status_code})")
    result: dict[str, Any] = response.json()
    return result


class _RedirectCatcher:
    """A one-request HTTP server on 127.0.0.1 that keeps the query of ``/callback``."""

    def __init__(self) -> None:
        self.params: dict[str, str] = {}
        self._done = threading.Event()
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/callback":
                    self.send_error(404)
                    return
                catcher.params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                catcher._done.set()
                self.send_response(200)
                self.send_header("content-type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write(b"sqlgate: signed in. You can close this window.\n")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 # signature of the base class
                del format, args

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> dict[str, str]:
        if not self._done.wait(timeout):
            raise IdentityError("browser login timed out")
        return self.params


__all__ = ["LoginPrompt", "pkce_pair", "run_login"]
