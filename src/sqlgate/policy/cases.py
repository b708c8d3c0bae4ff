"""Policy test cases: expected decisions kept next to the policy and run in CI (``sqlgate policy test``).

A cases file::

    policy: policy.yaml            # optional; relative to this file (--policy overrides)
    cases:
      - name: analysts read in office hours
        as: alice
        groups: [analysts]
        db: demo
        at: "2026-11-25T12:00:00+01:00"
        from: 10.1.2.3
        expect: {outcome: allow, role: read}
      - name: no writes
        as: alice
        groups: [analysts]
        db: demo
        role: write
        at: "2026-11-25T12:00:00Z"
        expect: {outcome: deny, reason: "no rule grants group analysts role write"}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from sqlgate.config import format_duration
from sqlgate.identity.principal import Principal
from sqlgate.policy.compiled import CompiledPolicy
from sqlgate.policy.decide import Decision, decide
from sqlgate.policy.model import Duration
from sqlgate.yamlfile import load_model

DEFAULT_ISSUER = "https://policy-test.invalid"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Expect(_Model):
    """What the decision must be; only the fields given are compared."""

    outcome: Literal["allow", "deny", "needs_approval"] = Field(description="allow, deny or needs_approval.")
    role: str | None = Field(None, description="The role chosen.")
    reason: str | None = Field(None, description="A piece of text the reason must contain.")
    ttl: Duration | None = Field(None, description="The grant length, spelled like `1h` or `30m`.")


class Case(_Model):
    """One request and its expected decision."""

    name: str = Field(description="What the case shows, printed in the results.")
    subject: str = Field(alias="as", description="The caller's subject.")
    groups: list[str] = Field(default_factory=list, description="The caller's groups.")
    issuer: str = Field(DEFAULT_ISSUER, description="The caller's issuer.")
    claims: dict[str, Any] = Field(default_factory=dict, description="Other claims of the caller's token.")
    db: str = Field(description="Database alias.")
    role: str | None = Field(None, description="The role asked for (default: the best granted).")
    at: AwareDatetime | None = Field(None, description="When, with a UTC offset (default: now).")
    source: str | None = Field(None, alias="from", description="The caller's source address.")
    expect: Expect = Field(description="The expected decision.")

    def principal(self) -> Principal:
        """The caller this case describes."""
        return Principal(self.subject, self.issuer, self.subject, groups=tuple(self.groups), claims=dict(self.claims))


class CasesFile(_Model):
    """A file of cases."""

    policy: Path | None = Field(None, description="The policy file, relative to this file.")
    cases: list[Case] = Field(min_length=1, description="The cases, run in order.")


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case, run."""

    case: Case
    decision: Decision
    mismatches: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when the decision is as expected."""
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.case.name,
            "passed": self.passed,
            "expected": self.case.expect.model_dump(mode="json", exclude_none=True),
            "decision": self.decision.to_dict(),
            "mismatches": list(self.mismatches),
        }


def load_cases(path: Path) -> CasesFile:
    """Read and validate a cases file (ConfigError lists mistakes with lines)."""
    cases = load_model(path, CasesFile)
    if cases.policy is not None and not cases.policy.is_absolute():
        cases = cases.model_copy(update={"policy": path.resolve().parent / cases.policy})
    return cases


def run_case(policy: CompiledPolicy, case: Case, *, now: datetime | None = None) -> CaseResult:
    """Decide ``case`` under ``policy`` and compare with what it expects."""
    at = case.at or now or datetime.now(UTC)
    decision = decide(policy, case.principal(), case.db, case.role, at, case.source, token_expires_at=None)
    return CaseResult(case, decision, tuple(_mismatches(case.expect, decision)))


def _mismatches(expect: Expect, decision: Decision) -> list[str]:
    found = []
    if decision.outcome != expect.outcome:
        found.append(f"outcome {decision.outcome}, expected {expect.outcome}")
    if expect.role is not None and decision.role != expect.role:
        found.append(f"role {decision.role}, expected {expect.role}")
    if expect.reason is not None and expect.reason not in (decision.reason or ""):
        found.append(f"reason {decision.reason!r} does not contain {expect.reason!r}")
    if expect.ttl is not None and decision.ttl != expect.ttl:
        got = format_duration(decision.ttl) if decision.ttl is not None else "none"
        found.append(f"ttl {got}, expected {format_duration(expect.ttl)}")
    return found
