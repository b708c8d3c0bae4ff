"""Verified claims -> :class:`Principal`, for people and workloads alike; pure.

Workload tokens need no special configuration:

- Kubernetes service accounts: ``sub`` is ``system:serviceaccount:<ns>:<name>``;
  without a groups claim the principal gets Kubernetes' own groups
  ``system:serviceaccounts`` and ``system:serviceaccounts:<ns>``.
- GitHub Actions: ``sub`` is ``repo:<owner>/<repo>:...``; ``repository``, ``ref``
  and ``environment`` stay in ``claims`` for policy.
- GCP identity tokens: ``sub`` is the numeric account id and ``email`` the
  service account (kept only when ``email_verified`` is not false).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlgate.config import IssuerConfig
from sqlgate.identity.principal import AuthMethod, Principal


@dataclass(frozen=True, slots=True)
class ClaimNames:
    """Where an issuer puts groups, display name and e-mail."""

    groups: str = "groups"
    name: str = "name"
    email: str = "email"

    @classmethod
    def of(cls, config: IssuerConfig) -> ClaimNames:
        """The claim names configured for an issuer."""
        return cls(groups=config.groups_claim, name=config.name_claim, email=config.email_claim)


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at ``path``: the whole name first (``cognito:groups``, URL claims), then dotted steps."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for step in path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


def groups_of(claims: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """Group names at ``path`` (a list of strings or one string); Kubernetes groups for SA tokens."""
    value = claim_at(claims, path)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(dict.fromkeys(g for g in value if isinstance(g, str) and g))
    return _kubernetes_groups(claims)


def _kubernetes_groups(claims: Mapping[str, Any]) -> tuple[str, ...]:
    kube = claims.get("kubernetes.io")
    namespace = kube.get("namespace") if isinstance(kube, Mapping) else None
    if isinstance(namespace, str) and namespace:
        return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
    return ()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def principal_from_claims(claims: Mapping[str, Any], names: ClaimNames, *, method: AuthMethod = "oidc") -> Principal:
    """The principal verified ``claims`` describe (``iss``, ``sub`` and ``exp`` already checked)."""
    subject = str(claims["sub"])
    name = _text(claim_at(claims, names.name)) or _text(claims.get("preferred_username")) or subject
    email = _text(claim_at(claims, names.email))
    if claims.get("email_verified") is False:
        email = None
    exp = claims.get("exp")
    expires_at = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
    return Principal(
        subject=subject,
        issuer=str(claims["iss"]),
        name=name,
        email=email,
        groups=groups_of(claims, names.groups),
        claims=MappingProxyType(dict(claims)),
        expires_at=expires_at,
        method=method,
    )
