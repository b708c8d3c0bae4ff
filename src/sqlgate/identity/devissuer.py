"""The built-in dev issuer: a real OIDC issuer for demos and tests, its key kept in ``data_dir``.

The key (EC P-256, ES256) lives in ``data_dir/dev-issuer/signing-key.pem``
(mode 0600) and is created on first use. :func:`mint_dev_token` signs tokens
straight from that file, so ``sqlgate token --user alice`` needs no running
server; :mod:`sqlgate.identity.devissuer_http` serves discovery, JWKS and a
loopback-only token endpoint. The gateway trusts these tokens only when
``identity.dev_issuer`` is true, and never serves the issuer on a
non-loopback address unless ``--insecure-dev`` is given. Tokens carry this
gateway's id as their audience (:mod:`sqlgate.identity.deployment`), so a dev
token of one gateway is refused by every other.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from sqlgate.config import IssuerConfig, Settings, is_loopback, split_host_port
from sqlgate.errors import ConfigError
from sqlgate.identity.deployment import deployment_id, load_or_create_id

DEV_ISSUER_PATH = "/dev-issuer"
DEV_ALGORITHM = "ES256"
MAX_DEV_TTL = timedelta(hours=24)
KEY_FILE = "signing-key.pem"

_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


def dev_issuer_url(settings: Settings) -> str:
    """``identity.dev_issuer_url``, else ``http://<listen.http>/dev-issuer``."""
    return settings.identity.dev_issuer_url or f"http://{settings.listen.http}{DEV_ISSUER_PATH}"


def check_dev_issuer_exposure(settings: Settings, insecure_dev: bool) -> None:
    """ConfigError when the dev issuer would be served on a non-loopback address without ``--insecure-dev``."""
    host, _ = split_host_port(settings.listen.http)
    if settings.identity.dev_issuer and not is_loopback(host) and not insecure_dev:
        raise ConfigError(
            f"the built-in dev issuer is for demos and would be reachable on {settings.listen.http}; "
            "listen on 127.0.0.1, set identity.dev_issuer to false, or pass --insecure-dev"
        )


def _load_or_create_key(directory: Path) -> ECKey:
    path = directory / KEY_FILE
    try:
        return ECKey.import_key(path.read_bytes())
    except FileNotFoundError:
        pass
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ECKey.generate_key("P-256")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return ECKey.import_key(path.read_bytes())
    with os.fdopen(fd, "wb") as file:
        file.write(key.as_pem(private=True))
    return key


@dataclass(frozen=True, slots=True)
class DevIssuer:
    """The dev issuer's identity: its URL, its signing key and the audience (this gateway's id) it mints for."""

    url: str
    key: ECKey
    audience: str

    @classmethod
    def load(cls, data_dir: Path, url: str, audience: str | None = None) -> DevIssuer:
        """The issuer whose key is in ``data_dir/dev-issuer/`` (created on first use).

        ``audience`` defaults to the id generated into ``data_dir`` (see :mod:`sqlgate.identity.deployment`).
        """
        return cls(url, _load_or_create_key(data_dir / "dev-issuer"), audience or load_or_create_id(data_dir))

    @classmethod
    def from_settings(cls, settings: Settings) -> DevIssuer:
        """The dev issuer of these settings: its key under ``data_dir``, minting for this gateway's id."""
        return cls.load(settings.data_dir, dev_issuer_url(settings), deployment_id(settings))

    @property
    def kid(self) -> str:
        """The key id: the RFC 7638 thumbprint of the public key."""
        return self.key.thumbprint()

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK."""
        return dict(self.key.as_dict(private=False, kid=self.kid, use="sig", alg=DEV_ALGORITHM))

    def public_key(self) -> ECKey:
        """The public key with its kid, as a verifier holds it."""
        return ECKey.import_key(self.public_jwk())

    def issuer_config(self) -> IssuerConfig:
        """How the gateway verifies this issuer's tokens."""
        return IssuerConfig(issuer=self.url, audience=self.audience, algorithms=[DEV_ALGORITHM])

    def mint(self, user: str, groups: list[str], ttl: timedelta, *, now: float | None = None) -> str:
        """A signed token for ``user`` in ``groups``, valid for ``ttl`` (ValueError on bad input)."""
        _check_name(user, "user")
        for group in groups:
            _check_name(group, "group")
        if not timedelta(0) < ttl <= MAX_DEV_TTL:
            raise ValueError("ttl must be between 1s and 24h")
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.url,
            "sub": user,
            "aud": self.audience,
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(ttl.total_seconds()),
            "name": user,
            "preferred_username": user,
            "groups": list(dict.fromkeys(groups)),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode({"alg": DEV_ALGORITHM, "kid": self.kid}, claims, self.key, algorithms=[DEV_ALGORITHM])


def _check_name(value: str, what: str) -> None:
    if not _NAME.fullmatch(value) or value != value.strip():
        raise ValueError(f"{what} must be 1-128 printable characters without surrounding spaces")


def mint_dev_token(settings: Settings, user: str, groups: list[str], ttl: timedelta) -> str:
    """A dev-issuer token signed with the key on disk (no server needed)."""
    return DevIssuer.from_settings(settings).mint(user, groups, ttl)
