"""explain(): the decision, plus every rule of the policy and why it did or did not apply.

Slower than decide() (it looks at every rule, not an index), and meant for
people: ``sqlgate policy explain`` and the API's "why was I denied?". When several
rules grant the chosen role, the decision carries their combined masks and
guardrails; the explanation also says which rule contributed what: each masked
selector with the rule whose function won (and the weaker ones it overrode), and
each rule's own guardrails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlgate.identity.principal import Principal
from sqlgate.policy.combine import MaskSource, guardrail_sources, mask_sources
from sqlgate.policy.compiled import CompiledPolicy, CompiledRule
from sqlgate.policy.decide import FROM_PRINCIPAL, Decision, Grant, Request, decide, deny_applies, make_request
from sqlgate.policy.model import Guardrails

Verdict = Literal["applies", "denies", "skipped"]


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """One rule, and what it said about the request."""

    rule: str
    effect: str
    role: str | None
    verdict: Verdict
    why: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"rule": self.rule, "effect": self.effect, "role": self.role, "verdict": self.verdict, "why": self.why}


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision, the trace of every rule behind it, and which granting rule contributed which limits."""

    decision: Decision
    rules: tuple[RuleTrace, ...]
    masks: tuple[MaskSource, ...] = ()
    guardrails: tuple[tuple[str, Guardrails], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "decision": self.decision.to_dict(),
            "rules": [trace.to_dict() for trace in self.rules],
            "contributions": {
                "mask": [_mask_dict(source) for source in self.masks],
                "guardrails": [{"rule": rule, "guardrails": g.model_dump()} for rule, g in self.guardrails],
            },
        }


def _mask_dict(source: MaskSource) -> dict[str, Any]:
    return {
        "selector": source.selector,
        "function": source.function,
        "rule": source.rule,
        "via": source.via,
        "overridden": [{"rule": rule, "function": function} for rule, function in source.overridden],
    }


def explain(  # noqa: PLR0913, PLR0917 - mirrors decide()
    policy: CompiledPolicy,
    principal: Principal,
    database: str,
    role: str | None = None,
    at: datetime | None = None,
    source: str | None = None,
    *,
    token_expires_at: datetime | None = FROM_PRINCIPAL,
    grants: Sequence[Grant] = (),
) -> Explanation:
    """The decision for this request and, for every rule in file order, why it applied or not."""
    decision = decide(policy, principal, database, role, at, source, token_expires_at=token_expires_at, grants=grants)
    request = make_request(principal, database, role, at, source)
    granting = _granting_rules(policy, decision)
    return Explanation(
        decision,
        tuple(_trace(rule, request) for rule in policy.rules),
        tuple(mask_sources(granting)),
        tuple(guardrail_sources(granting)),
    )


def _granting_rules(policy: CompiledPolicy, decision: Decision) -> list[CompiledRule]:
    """The rules whose limits the decision combines (none for a denial)."""
    if decision.outcome == "deny":
        return []
    by_name = {rule.name: rule for rule in policy.rules}
    return [by_name[name] for name in decision.matched_rules if name in by_name]


def _trace(rule: CompiledRule, request: Request) -> RuleTrace:
    verdict, why = _verdict(rule, request)
    return RuleTrace(rule.name, rule.rule.effect, rule.role, verdict, why)


def _verdict(rule: CompiledRule, request: Request) -> tuple[Verdict, str]:  # noqa: PLR0911 - one exit per reason
    role = request.role
    if not rule.databases.matches(request.database):
        return "skipped", f"database {request.database} is not in {', '.join(rule.rule.databases)}"
    if not rule.who_matches(request.principal):
        return "skipped", f"caller does not match who ({rule.who_label()})"
    if role is not None and rule.role is not None and rule.role != role:
        return "skipped", (f"denies role {rule.role} only" if rule.is_deny else f"grants role {rule.role}, not {role}")
    if rule.is_deny:
        if deny_applies(rule, request):
            return "denies", "deny rule matches; deny wins over allow"
        return "skipped", f"deny rule does not apply: {rule.conditions_refusal(request.at, request.address, None)}"
    refusal = rule.conditions_refusal(request.at, request.address, request.raw_source)
    if refusal is not None:
        return "skipped", refusal
    return "applies", ("matches; needs an approved access request" if rule.needs_approval else "matches")
