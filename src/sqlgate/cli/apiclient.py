"""Calling the gateway's HTTP API from the command line: where it is, which token, clear errors.

The gateway URL is ``--gateway``, else ``$SQLGATE_URL``, else ``http://<listen.http>``
from the settings. The token is ``--token``, else ``$SQLGATE_TOKEN``, else the
signed-in user's (``sqlgate login``), refreshed when needed. A refusal prints the
problem JSON's detail (and the rule or SQLSTATE behind it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from sqlgate.config import Settings, load_settings
from sqlgate.errors import IdentityError, SqlgateError
from sqlgate.identity.client import current_token

GatewayOption = Annotated[
    str | None,
    typer.Option(
        "--gateway", help="Gateway URL (default: $SQLGATE_URL, else http://<listen.http>).", show_default=False
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", help="Identity token (default: $SQLGATE_TOKEN, else your `sqlgate login`).", show_default=False
    ),
]
TIMEOUT = 30.0


class GatewayRefused(SqlgateError):
    """The gateway answered a command's request with an error."""


def gateway_url(settings: Settings, explicit: str | None) -> str:
    """The base URL of the gateway's HTTP API."""
    url = explicit or os.environ.get("SQLGATE_URL")
    if url:
        return url.rstrip("/")
    host, _, port = settings.listen.http.rpartition(":")
    host = "127.0.0.1" if host in {"0.0.0.0", "", "[::]", "::"} else host  # noqa: S104 - naming, not binding
    return f"http://{host}:{port}"


class ApiClient:
    """A thin client of the gateway's API for one command.

    The settings file is read only when it is needed: for the gateway's address when
    neither ``--gateway`` nor $SQLGATE_URL gives it, and for the signed-in user's token
    when neither ``--token`` nor $SQLGATE_TOKEN does.
    """

    def __init__(self, config: Path | None, gateway: str | None, token: str | None) -> None:
        explicit_url = gateway or os.environ.get("SQLGATE_URL")
        explicit_token = token or os.environ.get("SQLGATE_TOKEN")
        if explicit_url and explicit_token:
            self.url, self._token = explicit_url.rstrip("/"), explicit_token
            return
        settings = load_settings(config)
        self.url = gateway_url(settings, explicit_url)
        self._token = explicit_token or signed_in_token(settings)

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send one request; the decoded JSON body, or GatewayRefused saying why."""
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            response = httpx.request(
                method, self.url + path, json=json, params=params, headers=headers, timeout=TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise GatewayRefused(
                f"cannot reach the gateway at {self.url}: {exc}", hint="is it running? set --gateway or SQLGATE_URL"
            ) from None
        if response.is_success:
            return response.json()
        raise GatewayRefused(_problem_message(response))


def signed_in_token(settings: Settings) -> str:
    """The signed-in user's token, or an IdentityError that says exactly how to get a token."""
    if not any(issuer.client_id for issuer in settings.identity.issuers):
        raise IdentityError("no token: give --token or set SQLGATE_TOKEN", hint=_how_to_get_a_token(settings))
    try:
        return current_token(settings)
    except IdentityError as exc:  # not signed in, or the login expired: that reason says what to do
        raise IdentityError(
            f"no token: give --token or set SQLGATE_TOKEN, or {exc.message}", hint=_how_to_get_a_token(settings)
        ) from None


def _how_to_get_a_token(settings: Settings) -> str:
    login = "`sqlgate login` signs you in at a real issuer (identity.issuers with a client_id)"
    if settings.identity.dev_issuer:
        return f'the dev issuer is on: SQLGATE_TOKEN="$(sqlgate token --user NAME --group GROUP)" makes one, or {login}'
    return login


def _problem_message(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return f"the gateway answered {response.status_code}: {response.text[:200]}"
    if not isinstance(problem, dict):
        return f"the gateway answered {response.status_code}"
    message = str(problem.get("detail") or problem.get("title") or response.status_code)
    for field in problem.get("errors") or []:
        message += f"\n  {'.'.join(str(p) for p in field.get('loc', [])[1:])}: {field.get('msg')}"
    if problem.get("rule"):
        message += f" [rule {problem['rule']}]"
    return f"{response.status_code} {message}"
