"""The gateway's name in tokens (``identity.deployment_id``), so a token minted for one gateway is refused by another.

Every issuer without an ``audience`` of its own, the dev issuer, and AWS IAM
(``identity.aws.server_id``) default to it, so a token for staging does not open
production. It is, first found wins:

1. ``identity.deployment_id``, when set;
2. ``public_url``, when set (normalized: ``https://sqlgate.example.com``);
3. ``urn:sqlgate:<32 hex digits>``, generated once into ``data_dir/deployment-id``
   at first start (created atomically, never rewritten; a damaged file stops
   start-up rather than silently renaming the gateway).

The id is public: it travels in every token and ``sqlgate config show`` prints
it. It is unrelated to ``Services.deployment_id``, the state database's secret
that per-deployment keys derive from. This module reads and writes one file
under ``data_dir``; everything else in identity gets the resolved values.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from sqlgate.config import Settings
from sqlgate.errors import ConfigError

ID_FILE = "deployment-id"
GENERATED_PREFIX = "urn:sqlgate:"
_GENERATED = re.compile(r"urn:sqlgate:[0-9a-f]{32}")


def configured_id(settings: Settings) -> str | None:
    """``identity.deployment_id``, else ``public_url``; None when neither is set (no I/O)."""
    return settings.identity.deployment_id or settings.public_url


def deployment_id(settings: Settings, *, create: bool = True) -> str | None:
    """The gateway's id; a generated one is read from ``data_dir`` (and made there when ``create``)."""
    explicit = configured_id(settings)
    if explicit is not None:
        return explicit
    if create:
        return load_or_create_id(settings.data_dir)
    return read_generated_id(settings.data_dir)


def read_generated_id(data_dir: Path) -> str | None:
    """The id in ``data_dir/deployment-id``; None when the file does not exist; ConfigError when it is damaged."""
    path = data_dir / ID_FILE
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read this gateway's id from {path}: {exc}") from None
    value = text.strip()
    if not _GENERATED.fullmatch(value):
        raise ConfigError(
            f"{path} does not hold a deployment id ({GENERATED_PREFIX}<32 hex digits>): restore it, "
            "or set identity.deployment_id (tokens minted for this gateway name it)"
        )
    return value


def load_or_create_id(data_dir: Path) -> str:
    """The id in ``data_dir/deployment-id``, generated on first use; concurrent first starts agree on one."""
    existing = read_generated_id(data_dir)
    if existing is not None:
        return existing
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _publish(data_dir / ID_FILE, GENERATED_PREFIX + secrets.token_hex(16))
    created = read_generated_id(data_dir)
    if created is None:  # pragma: no cover - the file was removed between writing and reading it
        raise ConfigError(f"{data_dir / ID_FILE} vanished while it was being created")
    return created


def _publish(path: Path, value: str) -> None:
    """Write ``value`` to ``path`` unless it exists, never leaving a half-written file at ``path``."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(value + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process published first: theirs stands
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def resolve(settings: Settings, *, create: bool = True) -> Settings:
    """``settings`` with this gateway's id filled in where it is the default.

    ``identity.deployment_id``, each issuer's ``audience`` and ``identity.aws.server_id``
    get the id when unset. With ``create`` (the gateway starting) a missing id is
    generated; without it nothing is written and unknown defaults stay None.
    """
    value = deployment_id(settings, create=create)
    if value is None:
        return settings
    identity = settings.identity
    issuers = [
        issuer if issuer.audience is not None else issuer.model_copy(update={"audience": value})
        for issuer in identity.issuers
    ]
    aws = identity.aws if identity.aws.server_id is not None else identity.aws.model_copy(update={"server_id": value})
    updated = identity.model_copy(update={"deployment_id": value, "issuers": issuers, "aws": aws})
    return settings.model_copy(update={"identity": updated})
