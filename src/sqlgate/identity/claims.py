"""Registered-claim checks (iss, aud, exp, nbf, iat, age, required claims); pure, the clock is an argument."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlgate.config import IssuerConfig
from sqlgate.errors import ConfigError, TokenRejected


@dataclass(frozen=True, slots=True)
class ClaimRules:
    """What one issuer's tokens must satisfy."""

    issuer: str
    audiences: frozenset[str]
    leeway: float = 30.0
    max_token_age: float | None = None
    required_claims: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: IssuerConfig) -> ClaimRules:
        """The rules configured for an issuer (its audience resolved: :func:`sqlgate.identity.deployment.resolve`)."""
        audience = config.audience
        if audience is None:
            raise ConfigError(f"issuer {config.issuer!r} has no audience: this gateway's id was not resolved")
        return cls(
            issuer=config.issuer,
            audiences=frozenset([audience] if isinstance(audience, str) else audience),
            leeway=config.leeway.total_seconds(),
            max_token_age=None if config.max_token_age is None else config.max_token_age.total_seconds(),
            required_claims=tuple(config.required_claims),
        )


def check_claims(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    """Raise TokenRejected with the first rule ``claims`` break at time ``now`` (seconds since the epoch)."""
    if claims.get("iss") != rules.issuer:
        raise TokenRejected("issuer (iss) does not match")
    _check_audience(claims.get("aud"), rules.audiences)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenRejected("the token has no subject (sub)")
    _check_times(claims, rules, now)
    for name in rules.required_claims:
        if claims.get(name) in (None, "", [], {}):
            raise TokenRejected(f"required claim {name!r} is missing")


def _check_audience(aud: Any, accepted: frozenset[str]) -> None:
    if isinstance(aud, str):
        values = [aud]
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        values = aud
    else:
        raise TokenRejected("the token has no valid audience (aud)")
    if accepted.isdisjoint(values):
        raise TokenRejected("audience (aud) is not accepted here")


def numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim as float, None when absent; TokenRejected when it is not a number."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # noqa: PLR0124 # NaN check
        raise TokenRejected(f"claim {name} is not a NumericDate")
    return float(value)


def _check_times(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    exp = numeric_date(claims, "exp")
    nbf = numeric_date(claims, "nbf")
    iat = numeric_date(claims, "iat")
    if exp is None:
        raise TokenRejected("the token has no expiry (exp)")
    if now > exp + rules.leeway:
        raise TokenRejected("token expired")
    if nbf is not None and now + rules.leeway < nbf:
        raise TokenRejected("token not valid yet (nbf)")
    if iat is not None and now + rules.leeway < iat:
        raise TokenRejected("token issued in the future (iat)")
    if rules.max_token_age is not None:
        if iat is None:
            raise TokenRejected("the token has no issue time (iat) and a maximum age applies")
        if now - iat > rules.max_token_age + rules.leeway:
            raise TokenRejected("token is older than max_token_age")
