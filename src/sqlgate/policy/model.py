"""The policy file: its schema, validated with line numbers in every error.

Default deny: nothing is granted unless a rule grants it, and a rule with
``effect: deny`` wins over every allow. A minimal file::

    rules:
      - name: analysts-read-demo
        who: {groups: [analysts]}
        databases: [demo]
        role: read
        max_ttl: 1h
        when: {days: mon-fri, hours: "07:00-20:00", tz: Europe/Berlin}
        from: [127.0.0.0/8, 10.0.0.0/8]
        guardrails: {deny: [write, ddl, dcl, admin]}
        mask: {"customers.email": email, "*.ssn": redact}

When several allow rules grant the chosen role, their masks and guardrails
combine, the strictest winning (see :mod:`sqlgate.policy.decide`). A grant that
carries masks or guardrails is not handed out as a plain database login
(``/v1/credentials``, ``sqlgate creds``) unless its rule says ``direct_login: true``.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from sqlgate.config import Duration as _SettingsDuration
from sqlgate.config import parse_duration
from sqlgate.policy.timewindow import parse_days, parse_hours, parse_zone
from sqlgate.yamlfile import load_model

StatementClass = Literal["read", "write", "ddl", "dcl", "admin", "transaction", "session"]
MaskFunction = Literal["redact", "email", "last4", "hash", "null"]
GuardrailMode = Literal["enforce", "audit"]
BUILTIN_ROLES = ("read", "write", "admin")

_ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def _role_name(value: str) -> str:
    if not _ROLE.match(value):
        raise ValueError(f"{value!r} is not a role name (lower-case letters, digits, _ and -; e.g. read, write)")
    return value


def _rule_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a rule name (letters, digits, _ . : and -)")
    return value


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an address or CIDR (e.g. 10.0.0.0/8 or 2001:db8::/32)") from None
    return value


def _days(value: str | list[str]) -> str | list[str]:
    parse_days(value)
    return value


def _hours(value: str) -> str:
    parse_hours(value)
    return value


def _zone(value: str) -> str:
    parse_zone(value)
    return value


def _selector(value: str) -> str:
    if not value or value.count(".") > 2 or any(not part for part in value.split(".")):
        raise ValueError(f"{value!r} is not a column selector (write table.column, *.column or schema.table.column)")
    return value


# The settings' Duration, made to accept ``30s``/``1h30m`` spellings through parse_duration.
Duration = Annotated[_SettingsDuration, BeforeValidator(parse_duration)]
RoleName = Annotated[str, AfterValidator(_role_name)]
RuleName = Annotated[str, AfterValidator(_rule_name)]
Network = Annotated[str, AfterValidator(_network)]
Selector = Annotated[str, AfterValidator(_selector)]
# YAML reads an unquoted `null` as nothing at all: it means the `null` masking function.
MaskChoice = Annotated[MaskFunction, BeforeValidator(lambda value: "null" if value is None else value)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Who(_Model):
    """Whom a rule applies to; every kind named must match (a kind matches when any of its values does)."""

    subjects: list[str] = Field(
        default_factory=list, description="Token subjects (`sub`), globs allowed (`svc-*`). E-mail is not a subject."
    )
    groups: list[str] = Field(default_factory=list, description="Group names, globs allowed (`team-*`).")
    issuers: list[str] = Field(default_factory=list, description="Token issuers (`iss`), globs allowed.")
    claims: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Claim name (dotted for nested claims) -> glob or list of globs, e.g. `repository: acme/*`.",
    )

    @model_validator(mode="after")
    def _names_someone(self) -> Who:
        if not (self.subjects or self.groups or self.issuers or self.claims):
            raise ValueError("names nobody: give subjects, groups, issuers or claims (use groups: ['*'] for anyone)")
        return self


class When(_Model):
    """When a rule applies, in its own time zone."""

    days: Annotated[str | list[str], AfterValidator(_days)] | None = Field(
        None, description="Weekdays, e.g. `mon-fri`, `sat,sun` or a list; ranges wrap (`fri-mon`)."
    )
    hours: Annotated[str, AfterValidator(_hours)] | None = Field(
        None, description="Hour range `HH:MM-HH:MM`; an end before the start runs overnight (`22:00-06:00`)."
    )
    tz: Annotated[str, AfterValidator(_zone)] = Field("UTC", description="IANA time zone, e.g. `Europe/Berlin`.")
    start: date | None = Field(None, alias="from", description="First day the rule applies (inclusive, in `tz`).")
    until: date | None = Field(None, description="Last day the rule applies (inclusive, in `tz`).")

    @model_validator(mode="after")
    def _ordered(self) -> When:
        if self.start and self.until and self.until < self.start:
            raise ValueError("`until` is before `from`")
        return self


class Guardrails(_Model):
    """What statements a grant refuses, decided on parsed SQL."""

    deny: list[StatementClass] = Field(
        default_factory=list,
        description="Statement classes refused: read, write, ddl, dcl, admin, transaction, session.",
    )
    require_where: bool = Field(default=True, description="Refuse UPDATE and DELETE without a WHERE clause.")
    deny_functions: list[str] = Field(
        default_factory=list, description="Functions refused wherever they appear (globs, e.g. `pg_*`)."
    )
    deny_tables: list[str] = Field(
        default_factory=list, description="Tables refused wherever they appear (`table` or `schema.table`, globs)."
    )
    mode: GuardrailMode = Field(
        default="enforce",
        description=(
            "`enforce` (the default) refuses what the guardrails forbid. `audit` rolls a rule out safely: a statement"
            " the guardrails would refuse runs, and the audit log records it with outcome `would_deny` and the reason."
            " Statements that change the session's identity are refused in either mode. When several rules grant the"
            " role, the guardrails combine and `enforce` wins if any of them enforces."
        ),
    )


class Approvers(_Model):
    """Who may approve an access request."""

    groups: list[str] = Field(min_length=1, description="Groups whose members may approve (never the requester).")


class Approval(_Model):
    """Just-in-time approval for a rule's grant."""

    required: bool = Field(default=True, description="A grant needs an approved access request first.")
    approvers: Approvers | None = Field(None, description="Who may approve; required when `required` is true.")
    min_approvals: int = Field(1, ge=1, le=10, description="Distinct approvers needed.")
    max_duration: Duration | None = Field(
        None,
        description=(
            "Longest grant an approval gives (default: `max_ttl`). A request asking for longer is refused, naming"
            " the rule; the window starts when the last needed approval lands."
        ),
    )
    require_reason: bool = Field(
        default=True,
        description="A request must give a reason (shown to approvers, kept in the audit log); `false` allows none.",
    )

    @model_validator(mode="after")
    def _has_approvers(self) -> Approval:
        if self.required and self.approvers is None:
            raise ValueError("approval is required but names no approvers (add approvers: {groups: [...]})")
        return self


class Rule(_Model):
    """One rule: who may use which role on which databases, when, from where, with which limits."""

    name: RuleName = Field(description="Unique name, shown in decisions and the audit log.")
    description: str | None = Field(None, description="Why the rule exists, for reviewers.")
    effect: Literal["allow", "deny"] = Field("allow", description="`allow` grants; `deny` refuses and wins.")
    who: Who = Field(description="Whom the rule applies to.")
    databases: list[str] = Field(min_length=1, description="Database aliases from the settings, globs allowed.")
    role: RoleName | None = Field(
        None, description="Privilege level: read, write, admin or a custom name (deny rules: omit to deny all)."
    )
    max_ttl: Duration | None = Field(None, description="Longest grant (default: the policy's `default_max_ttl`).")
    when: When | None = Field(None, description="Weekdays, hours and dates the rule applies.")
    from_: list[Network] = Field(
        default_factory=list, alias="from", description="Source addresses or CIDRs (IPv4 and IPv6); empty: any."
    )
    guardrails: Guardrails | None = Field(None, description="Statements refused under this grant.")
    mask: dict[Selector, MaskChoice] = Field(
        default_factory=dict, description="Column selector (`table.column`, `*.column`, globs) -> masking function."
    )
    approval: Approval | None = Field(None, description="Just-in-time approval before the grant is usable.")
    direct_login: bool | None = Field(
        None,
        description=(
            "`true`: this grant may also be used as a plain database login, without masking or guardrails"
            " (`POST /v1/credentials`, `sqlgate creds`, the connector's gateway credentials). Unset: only when the"
            " rule has no `mask` and no `guardrails`; a grant that carries them is served through the proxy and"
            " `/v1/query` only. `false`: never, even without masks or guardrails."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.effect == "allow" and self.role is None:
            raise ValueError("an allow rule needs a role (read, write, admin or a custom name)")
        if self.effect == "deny" and (
            self.approval or self.guardrails or self.mask or self.max_ttl or self.direct_login is not None
        ):
            raise ValueError("a deny rule takes no approval, guardrails, mask, max_ttl or direct_login")
        return self

    @property
    def allows_direct_login(self) -> bool:
        """True when the grant may be handed out as a plain database login (see ``direct_login``)."""
        if self.direct_login is not None:
            return self.direct_login
        return self.guardrails is None and not self.mask

    @property
    def needs_approval(self) -> bool:
        """True when the grant is usable only through an approved access request."""
        return self.approval is not None and self.approval.required


class PolicyFile(_Model):
    """The whole policy file."""

    default_max_ttl: Duration = Field(timedelta(hours=1), description="Grant length when a rule names no max_ttl.")
    rules: list[Rule] = Field(default_factory=list, description="The rules, in order; nothing is granted without one.")

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return rules


def load_policy_file(path: Path) -> PolicyFile:
    """Read and validate ``path``; a ConfigError lists every mistake with its line."""
    return load_model(path, PolicyFile)
