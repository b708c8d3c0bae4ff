"""Helpers shared by the policy tests: policies from YAML text, principals, instants."""

from __future__ import annotations

from datetime import UTC, datetime

from ruamel.yaml import YAML

from sqlgate.identity.principal import Principal
from sqlgate.policy import CompiledPolicy, PolicyFile, compile_policy

ISSUER = "https://idp.example.com"


def policy_from(text: str) -> CompiledPolicy:
    """Validate and compile a policy written as YAML."""
    return compile_policy(PolicyFile.model_validate(YAML(typ="safe").load(text)))


def person(subject="alice", *groups, issuer=ISSUER, claims=None, source=None, expires_at=None) -> Principal:
    """A principal in ``groups``."""
    return Principal(
        subject,
        issuer,
        subject.title(),
        groups=tuple(groups),
        claims=claims or {},
        source=source,
        expires_at=expires_at,
    )


def utc(text: str) -> datetime:
    """``"2026-11-25 12:00"`` as an aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
