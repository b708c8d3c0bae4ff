"""Where the app's own identity token comes from.

An :class:`IdentitySource` is asked for a fresh :class:`Token` at every credential
refresh, so a token that rotates outside the process (a Kubernetes projected
service-account token, a CI job token) is picked up without a restart:

- :class:`TokenFile` — a file re-read each time (``/var/run/secrets/tokens/sqlgate``)
- :class:`EnvToken` — an environment variable
- :class:`CommandToken` — the output of a command (``sqlgate token``)
- :class:`GcpMetadataToken` — the GCP metadata server's identity endpoint
- :class:`DevIssuerToken` — sqlgate's dev issuer (demos and tests)

Every failure is a :class:`TokenUnavailable` that says which source failed and what
to check; no message ever holds the token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from sqlgate.connector.errors import TokenUnavailable

__all__ = [
    "CommandToken",
    "DevIssuerToken",
    "EnvToken",
    "GcpMetadataToken",
    "IdentitySource",
    "Token",
    "TokenFile",
]

GCP_IDENTITY_ENDPOINT = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity"


@dataclass(frozen=True)
class Token:
    """A bearer token and, when it says so, when it expires (read from a JWT's ``exp``, not verified)."""

    value: str = field(repr=False)
    expires_at: datetime | None = None

    @classmethod
    def of(cls, value: str) -> Token:
        """A token from its text, with ``expires_at`` read from the JWT payload when there is one."""
        return cls(value, jwt_expiry(value))


@runtime_checkable
class IdentitySource(Protocol):
    """Gives the app's current identity token; called again at every refresh."""

    async def token(self) -> Token:
        """The current token; raises :class:`TokenUnavailable` when there is none."""
        ...


class TokenFile:
    """A token in a file, re-read at every call (rotating Kubernetes projected tokens just work)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    async def token(self) -> Token:
        """Read the file now."""
        try:
            text = await asyncio.to_thread(self.path.read_text, "utf-8")
        except FileNotFoundError:
            raise TokenUnavailable(
                f"no token file at {self.path}", hint="mount the projected service-account token there"
            ) from None
        except OSError as exc:
            raise TokenUnavailable(f"cannot read the token file {self.path}: {exc.strerror}") from None
        return _non_empty(text, f"the token file {self.path}")

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"


class EnvToken:
    """A token in an environment variable, read at every call."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def token(self) -> Token:
        """Read the variable now."""
        value = os.environ.get(self.name)
        if value is None:
            raise TokenUnavailable(f"the environment variable {self.name} is not set", hint="export the app's token")
        return _non_empty(value, f"the environment variable {self.name}")

    def __repr__(self) -> str:
        return f"EnvToken({self.name!r})"


class CommandToken:
    """A token printed by a command (plain text, or JSON with ``access_token`` or ``token``)."""

    def __init__(self, argv: Sequence[str], *, timeout: float = 15.0) -> None:
        if not argv:
            raise ValueError("CommandToken needs a command to run")
        self.argv = tuple(argv)
        self.timeout = timeout

    async def token(self) -> Token:
        """Run the command now."""
        stdout = await run_token_command(self.argv, self.timeout)
        return _non_empty(token_from_output(stdout, self.argv[0]), f"the output of {self.argv[0]}")

    def __repr__(self) -> str:
        return f"CommandToken({list(self.argv)!r})"


class GcpMetadataToken:
    """A Google-signed identity token for ``audience`` from the GCP metadata server."""

    def __init__(
        self,
        audience: str,
        *,
        endpoint: str = GCP_IDENTITY_ENDPOINT,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.audience = audience
        self.endpoint = endpoint
        self.timeout = timeout
        self.transport = transport

    async def token(self) -> Token:
        """Ask the metadata server now."""
        params = {"audience": self.audience, "format": "full"}
        async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as client:
            try:
                response = await client.get(self.endpoint, params=params, headers={"Metadata-Flavor": "Google"})
            except httpx.HTTPError as exc:
                raise TokenUnavailable(
                    f"the GCP metadata server at {self.endpoint} is unreachable: {type(exc).__name__}",
                    hint="run on GCP or set endpoint= to a reachable metadata server",
                ) from None
        if response.status_code != 200:
            raise TokenUnavailable(
                f"the GCP metadata server answered {response.status_code} for audience {self.audience!r}",
                hint="check the workload's service account and the audience",
            )
        return _non_empty(response.text, "the GCP metadata server's answer")

    def __repr__(self) -> str:
        return f"GcpMetadataToken({self.audience!r}, endpoint={self.endpoint!r})"


class DevIssuerToken:
    """A token from sqlgate's dev issuer: its ``POST {issuer}/token`` endpoint, or ``sqlgate token --json``.

    With ``issuer`` (e.g. ``http://127.0.0.1:8480/dev-issuer``) the endpoint is asked
    over HTTP; without it ``sqlgate token --user U --group G --ttl T --json`` is run
    (it knows the local demo's issuer). Demos and tests only.
    """

    def __init__(  # noqa: PLR0913 - keyword-only options of a public constructor
        self,
        user: str,
        *,
        groups: Sequence[str] = (),
        ttl: str | None = None,
        issuer: str | None = None,
        command: Sequence[str] = ("sqlgate", "token"),
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.user = user
        self.groups = tuple(groups)
        self.ttl = ttl
        self.issuer = issuer.rstrip("/") if issuer else None
        self.command = tuple(command)
        self.timeout = timeout
        self.transport = transport

    async def token(self) -> Token:
        """Ask the dev issuer now."""
        if self.issuer is None:
            return await self._from_command()
        return await self._from_endpoint(self.issuer)

    async def _from_endpoint(self, issuer: str) -> Token:
        form = {"user": self.user, "groups": ",".join(self.groups)}
        if self.ttl is not None:
            form["ttl"] = self.ttl
        async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as client:
            try:
                response = await client.post(f"{issuer}/token", data=form)
            except httpx.HTTPError as exc:
                raise TokenUnavailable(
                    f"the dev issuer at {issuer} is unreachable: {type(exc).__name__}",
                    hint="start it with `sqlgate up`",
                ) from None
        if response.status_code != 200:
            raise TokenUnavailable(f"the dev issuer at {issuer} answered {response.status_code} for {self.user!r}")
        return _non_empty(token_from_output(response.text, "the dev issuer"), "the dev issuer's answer")

    async def _from_command(self) -> Token:
        argv = [*self.command, "--user", self.user, "--json"]
        for group in self.groups:
            argv += ["--group", group]
        if self.ttl is not None:
            argv += ["--ttl", self.ttl]
        stdout = await run_token_command(argv, self.timeout)
        return _non_empty(token_from_output(stdout, self.command[0]), f"the output of {self.command[0]}")

    def __repr__(self) -> str:
        return f"DevIssuerToken({self.user!r}, issuer={self.issuer!r})"


async def run_token_command(argv: Sequence[str], timeout: float) -> str:  # noqa: ASYNC109 - bounds a child process
    """Run ``argv`` (no shell) and return its standard output; failures are :class:`TokenUnavailable`."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        raise TokenUnavailable(f"cannot run {argv[0]!r}: {exc.strerror}", hint="install it or fix PATH") from None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise TokenUnavailable(f"{argv[0]!r} printed no token within {timeout:g} s") from None
    if process.returncode != 0:
        reason = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise TokenUnavailable(f"{argv[0]!r} failed with exit code {process.returncode}: {reason[0][:200]}")
    return stdout.decode(errors="replace")


def token_from_output(text: str, origin: str) -> str:
    """The token in ``text``: JSON with ``access_token``/``id_token``/``token``, or the text itself."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return stripped
    try:
        document = json.loads(stripped)
    except ValueError:
        raise TokenUnavailable(f"{origin} printed JSON that does not parse") from None
    for key in ("access_token", "id_token", "token"):
        value = document.get(key) if isinstance(document, dict) else None
        if isinstance(value, str):
            return value
    raise TokenUnavailable(f"{origin} printed JSON without access_token, id_token or token")


def jwt_expiry(value: str) -> datetime | None:
    """The ``exp`` of a JWT, read without verification (only to plan refreshes); None if not a JWT."""
    parts = value.split(".")
    if len(parts) != 3:
        return None
    try:
        payload: Any = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload["exp"]
        return datetime.fromtimestamp(float(exp), UTC) if isinstance(exp, int | float) else None
    except (ValueError, KeyError, TypeError, OverflowError):
        return None


def _non_empty(text: str, origin: str) -> Token:
    value = text.strip()
    if not value:
        raise TokenUnavailable(f"{origin} is empty", hint="the token has not been written yet, or was revoked")
    if any(ch.isspace() for ch in value):
        raise TokenUnavailable(f"{origin} holds more than one word; expected a single token")
    return Token.of(value)
