"""decide(): a verified identity, a database and a moment -> allow, deny or needs approval.

Pure: no I/O, no clock (the caller passes ``at``). The order of reasoning:

1. An expired token is denied.
2. Rules that apply are those naming the database and matching the caller's ``who``.
3. A deny rule whose conditions hold wins: without a role it denies everything,
   with a role it removes that role. An unknown source address counts as inside
   a deny rule's ``from`` (fail closed) and outside an allow rule's.
4. Among allow rules whose ``when`` and ``from`` hold, the requested role is
   chosen; when no role is asked for, the best one granted without waiting for
   approval, in the order read < write < admin < custom roles (an earlier rule's
   custom role ranks above a later one's). Roles needing approval are chosen
   only when nothing else is granted.
5. A role needing approval is allowed while an approved grant for it is active.
6. Every rule granting the chosen role contributes its masks and guardrails,
   combined so that the strictest wins (:mod:`sqlgate.policy.combine`: masks are a
   union, the stricter function winning on one selector, ``null`` > ``redact`` >
   ``hash`` > ``last4`` > ``email``; guardrails deny the union of what each denies,
   ``require_where`` if any requires it, ``mode: enforce`` if any enforces).
   The first of them (file order) gives the TTL: the least of its ``max_ttl``,
   the token's remaining life, and for approvals ``approval.max_duration`` and
   the grant's remaining life.
7. The grant may be used as a plain database login (``direct_login``) only when
   every contributing rule allows it: a rule with masks or guardrails must say
   ``direct_login: true``. ``direct_login_refused_by`` names the first that does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from sqlgate.config import format_duration
from sqlgate.identity.principal import Principal
from sqlgate.policy.combine import combine_guardrails, combine_masks
from sqlgate.policy.compiled import CompiledPolicy, CompiledRule, IPAddress, parse_source
from sqlgate.policy.model import Approval, Guardrails

Outcome = Literal["allow", "deny", "needs_approval"]


class _TokenExpiry:
    """Marker: take the token's expiry from ``principal.expires_at``."""


FROM_PRINCIPAL: Any = _TokenExpiry()
_NO_MASK: Mapping[str, str] = MappingProxyType({})
_COMBINED_CACHE = 1024  # sets of rules granting one role together (bounded: policies are replaced on reload)


@dataclass(frozen=True, slots=True)
class Grant:
    """An approved access request, as decide() sees it."""

    principal_key: str
    database: str
    role: str
    expires_at: datetime
    request_id: str | None = None


class Decision(NamedTuple):
    """What policy says about one request; ``reason`` is a sentence a person can act on.

    Immutable (a named tuple: cheaper to build than a frozen dataclass on the hot path).
    """

    outcome: Outcome
    database: str
    role: str | None = None
    ttl: timedelta | None = None
    guardrails: Guardrails | None = None
    mask: Mapping[str, str] = _NO_MASK
    matched_rules: tuple[str, ...] = ()
    reason: str | None = None
    approval: Approval | None = None
    grant_id: str | None = None
    direct_login: bool = False
    direct_login_refused_by: str | None = None

    @property
    def allowed(self) -> bool:
        """True when the caller may connect now."""
        return self.outcome == "allow"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (durations spelled ``1h30m``)."""
        return {
            "outcome": self.outcome,
            "database": self.database,
            "role": self.role,
            "ttl": format_duration(self.ttl) if self.ttl is not None else None,
            "ttl_seconds": int(self.ttl.total_seconds()) if self.ttl is not None else None,
            "guardrails": self.guardrails.model_dump() if self.guardrails else None,
            "mask": dict(self.mask),
            "matched_rules": list(self.matched_rules),
            "reason": self.reason,
            "approval": self.approval.model_dump(mode="json") if self.approval else None,
            "grant_id": self.grant_id,
            "direct_login": self.direct_login,
            "direct_login_refused_by": self.direct_login_refused_by,
        }


@dataclass(slots=True)
class _Evaluation:
    """Rules sorted by what they say about one request."""

    allows: list[CompiledRule] = field(default_factory=list)
    other_roles: list[CompiledRule] = field(default_factory=list)
    refusals: list[tuple[CompiledRule, str]] = field(default_factory=list)
    denied_roles: dict[str, CompiledRule] = field(default_factory=dict)
    deny_all: CompiledRule | None = None


class Request(NamedTuple):
    """One question put to the policy, with the source address already parsed."""

    principal: Principal
    database: str
    role: str | None
    at: datetime
    address: IPAddress | None
    raw_source: str | None


def decide(  # noqa: PLR0913, PLR0917 - the signature the proxy and the API call
    policy: CompiledPolicy,
    principal: Principal,
    database: str,
    role: str | None = None,
    at: datetime | None = None,
    source: str | None = None,
    *,
    token_expires_at: datetime | None = FROM_PRINCIPAL,
    grants: Sequence[Grant] = (),
) -> Decision:
    """Decide whether ``principal`` may use ``role`` (or the best role) on ``database`` at ``at``."""
    request = make_request(principal, database, role, at, source)
    expires = principal.expires_at if token_expires_at is FROM_PRINCIPAL else token_expires_at
    token_left = None if expires is None else expires - request.at
    if token_left is not None and token_left <= timedelta(0):
        return Decision("deny", database, role, reason="the identity token has expired; sign in again")
    return _conclude(_evaluate(policy, request), request, token_left, grants)


def make_request(
    principal: Principal, database: str, role: str | None, at: datetime | None, source: str | None
) -> Request:
    """A :class:`Request`; ``source`` defaults to the principal's; ``at`` must be timezone-aware."""
    if at is None or at.tzinfo is None:
        raise ValueError("decide() needs an aware datetime `at`")
    raw = source if source is not None else principal.source
    return Request(principal, database, role, at, parse_source(raw), raw)


def deny_applies(rule: CompiledRule, request: Request) -> bool:
    """True when a deny rule's conditions hold; an unknown source counts as inside its ``from`` (fail closed)."""
    if rule.window_refusal(request.at) is not None:
        return False
    return request.address is None or rule.source_refusal(request.address, request.raw_source) is None


def _evaluate(policy: CompiledPolicy, request: Request) -> _Evaluation:
    result = _Evaluation()
    for rule in policy.index_for(request.database).candidates(request.principal):
        if not rule.who_matches(request.principal):
            continue
        if rule.is_deny:
            if deny_applies(rule, request):
                if rule.role is None:
                    result.deny_all = result.deny_all or rule
                else:
                    result.denied_roles.setdefault(rule.role, rule)
            continue
        if request.role is not None and rule.role != request.role:
            result.other_roles.append(rule)
            continue
        refusal = rule.conditions_refusal(request.at, request.address, request.raw_source)
        if refusal is not None:
            result.refusals.append((rule, refusal))
        else:
            result.allows.append(rule)
    return result


def _conclude(ev: _Evaluation, request: Request, token_left: timedelta | None, grants: Sequence[Grant]) -> Decision:
    database, role = request.database, request.role
    denial = ev.deny_all or (ev.denied_roles.get(role) if role is not None else None)
    allows = [rule for rule in ev.allows if rule.role not in ev.denied_roles] if ev.denied_roles else ev.allows
    if denial is None and ev.allows and not allows:
        denial = next(iter(ev.denied_roles.values()))
    if denial is not None:
        return Decision("deny", database, role, matched_rules=(denial.name,), reason=f"denied by rule {denial.name}")
    active = _active_grants(grants, request.principal.key, database, request.at) if grants else {}
    usable = [rule for rule in allows if not rule.needs_approval or rule.role in active]
    if usable:
        return _allow(usable, database, active, token_left, request.at)
    if allows:
        return _needs_approval(allows, database, token_left)
    if ev.refusals:
        reasons = "; ".join(f"{why} (rule {rule.name})" for rule, why in ev.refusals)
        return Decision("deny", database, role, reason=reasons)
    return Decision("deny", database, role, reason=_no_rule(request, ev.other_roles))


def _best(rules: Iterable[CompiledRule]) -> CompiledRule:
    return max(rules, key=_rank)


def _rank(rule: CompiledRule) -> tuple[int, int]:
    return rule.rank


def _allow(
    usable: list[CompiledRule], database: str, active: dict[str, Grant], token_left: timedelta | None, at: datetime
) -> Decision:
    if len(usable) == 1:
        same_role = usable
    else:
        chosen = _best(usable)
        same_role = [rule for rule in usable if rule.role == chosen.role]
    decisive = same_role[0]
    ttl = decisive.max_ttl if token_left is None else min(decisive.max_ttl, token_left)
    grant = active.get(decisive.role or "") if decisive.needs_approval else None
    if grant is not None:
        ttl = _least(ttl, _approval_cap(decisive.approval), grant.expires_at - at)
    limits = _limits(same_role)
    return Decision(
        "allow",
        database,
        decisive.role,
        ttl=ttl,
        guardrails=limits.guardrails,
        mask=limits.mask,
        matched_rules=limits.names,
        approval=decisive.approval if grant else None,
        grant_id=grant.request_id if grant else None,
        direct_login=limits.direct_login_refused_by is None,
        direct_login_refused_by=limits.direct_login_refused_by,
    )


def _needs_approval(allows: list[CompiledRule], database: str, token_left: timedelta | None) -> Decision:
    chosen = _best(allows)
    same_role = [rule for rule in allows if rule.role == chosen.role]
    decisive = same_role[0]
    approval = decisive.approval
    groups = ", ".join(approval.approvers.groups) if approval and approval.approvers else "?"
    limits = _limits(same_role)
    return Decision(
        "needs_approval",
        database,
        decisive.role,
        ttl=_least(decisive.max_ttl, _approval_cap(approval), token_left),
        guardrails=limits.guardrails,
        mask=limits.mask,
        matched_rules=limits.names,
        direct_login=limits.direct_login_refused_by is None,
        direct_login_refused_by=limits.direct_login_refused_by,
        reason=(
            f"role {decisive.role} on {database} needs approval from group {groups} "
            f"(rule {decisive.name}); file an access request"
        ),
        approval=approval,
    )


class Limits(NamedTuple):
    """What the rules granting one role impose together: combined guardrails and masks, direct-login verdict."""

    names: tuple[str, ...]
    guardrails: Guardrails | None
    mask: Mapping[str, str]
    direct_login_refused_by: str | None


def _limits(rules: list[CompiledRule]) -> Limits:
    if len(rules) == 1:
        only = rules[0]
        return Limits((only.name,), only.guardrails, only.mask, None if only.direct_login else only.name)
    return combined_limits(tuple(rules))


@lru_cache(maxsize=_COMBINED_CACHE)
def combined_limits(rules: tuple[CompiledRule, ...]) -> Limits:
    """The limits of ``rules`` granting one role together, the strictest of each winning (memoised)."""
    return Limits(
        tuple(rule.name for rule in rules),
        combine_guardrails([rule.guardrails for rule in rules]),
        MappingProxyType(combine_masks(rules)),
        next((rule.name for rule in rules if not rule.direct_login), None),
    )


def _no_rule(request: Request, other_rules: list[CompiledRule]) -> str:
    principal, database, role = request.principal, request.database, request.role
    groups = principal.groups
    if groups:
        who = ("group " if len(groups) == 1 else "groups ") + ", ".join(groups)
    else:
        who = f"subject {principal.subject}"
    wanted = f"role {role}" if role else "any role"
    sentence = f"no rule grants {who} {wanted} on {database}"
    granted = [
        rule.role
        for rule in other_rules
        if rule.role and rule.conditions_refusal(request.at, request.address, request.raw_source) is None
    ]
    if granted:
        sentence += f" (granted: {', '.join(dict.fromkeys(granted))})"
    return sentence


def _active_grants(grants: Sequence[Grant], key: str, database: str, at: datetime) -> dict[str, Grant]:
    active: dict[str, Grant] = {}
    for grant in grants:
        if grant.principal_key == key and grant.database == database and grant.expires_at > at:
            current = active.get(grant.role)
            if current is None or grant.expires_at > current.expires_at:
                active[grant.role] = grant
    return active


def _approval_cap(approval: Approval | None) -> timedelta | None:
    return approval.max_duration if approval else None


def _least(*values: timedelta | None) -> timedelta:
    present = [v for v in values if v is not None]
    return min(present) if present else timedelta(0)
