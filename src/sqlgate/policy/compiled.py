"""A policy file compiled for fast decisions: globs precompiled, rules indexed.

Rules are indexed by database name, then by the exact group or subject their
``who`` requires, so a decision looks only at the few rules that could apply to
one caller. Rules naming databases or identities by glob, or only by issuer or
claim, stay in a short list every decision scans.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import translate
from functools import lru_cache
from itertools import chain
from types import MappingProxyType
from typing import Any

from sqlgate.identity.principal import Principal
from sqlgate.policy.combine import dedupe_mask
from sqlgate.policy.model import Approval, Guardrails, PolicyFile, Rule
from sqlgate.policy.timewindow import TimeWindow, format_minutes, parse_days, parse_hours, parse_zone

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_GLOB_CHARS = frozenset("*?[")
# When no role is asked for, the best granted one is chosen: read < write < admin < custom (earlier rule first).
ROLE_RANK = {"read": 0, "write": 1, "admin": 2}
CUSTOM_RANK = 3
_CANDIDATE_CACHE = 10_000  # (groups, subject) combinations remembered per database
_GLOB_DATABASE_CACHE = 1024  # database names indexed on the fly (names come from callers: bounded)


def is_glob(value: str) -> bool:
    """True when ``value`` holds a glob character."""
    return not _GLOB_CHARS.isdisjoint(value)


@dataclass(frozen=True, slots=True)
class Matcher:
    """Exact names and compiled globs; :meth:`matches` tests one value."""

    exact: frozenset[str]
    globs: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, values: Iterable[str]) -> Matcher:
        """Split ``values`` into exact names and globs."""
        values = list(values)
        exact = frozenset(v for v in values if not is_glob(v))
        globs = tuple(re.compile(translate(v)) for v in values if is_glob(v))
        return cls(exact, globs)

    def __bool__(self) -> bool:
        return bool(self.exact or self.globs)

    def matches(self, value: str) -> bool:
        """True when ``value`` is one of the names or matches a glob."""
        return value in self.exact or any(g.match(value) for g in self.globs)

    def matches_any(self, values: Collection[str]) -> bool:
        """True when any of ``values`` matches."""
        if not self.exact.isdisjoint(values):
            return True
        return bool(self.globs) and any(g.match(v) for g in self.globs for v in values)


@lru_cache(maxsize=4096)
def parse_source(source: str | None) -> IPAddress | None:
    """The address in ``source`` (``10.0.0.1``, ``[::1]:5432``, IPv4-mapped IPv6 unwrapped), or None."""
    if not source:
        return None
    text = source.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def claim_values(claims: Mapping[str, Any], path: tuple[str, ...]) -> list[str]:
    """The string values at dotted ``path`` in ``claims`` (a list claim gives each item)."""
    node: Any = claims
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return []
        node = node[part]
    items = node if isinstance(node, list | tuple) else [node]
    return [str(item).lower() if isinstance(item, bool) else str(item) for item in items if item is not None]


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """One rule, ready to match."""

    rule: Rule
    order: int
    name: str
    role: str | None
    is_deny: bool
    needs_approval: bool
    approval: Approval | None
    guardrails: Guardrails | None
    mask: Mapping[str, str]
    direct_login: bool
    rank: tuple[int, int]
    databases: Matcher
    subjects: Matcher | None
    groups: Matcher | None
    issuers: Matcher | None
    claims: tuple[tuple[tuple[str, ...], Matcher], ...]
    window: TimeWindow | None
    networks: tuple[IPNetwork, ...]
    networks_label: str
    network_ints: tuple[tuple[int, int, int], ...]
    max_ttl: timedelta

    def who_matches(self, principal: Principal) -> bool:
        """True when every kind of identity the rule names matches ``principal``."""
        if self.groups is not None and not self.groups.matches_any(principal.groups):
            return False
        if self.subjects is not None and not self.subjects.matches(principal.subject):
            return False
        if self.issuers is not None and not self.issuers.matches(principal.issuer):
            return False
        if not self.claims:
            return True
        return all(matcher.matches_any(claim_values(principal.claims, path)) for path, matcher in self.claims)

    def window_refusal(self, at: datetime) -> str | None:
        """None inside the rule's ``when``, else why not."""
        return None if self.window is None else self.window.refusal(at)

    def source_refusal(self, source: IPAddress | None, raw: str | None) -> str | None:
        """None when the source is allowed, else why not."""
        if not self.networks:
            return None
        if source is None:
            shown = f"source {raw!r} is not an address" if raw else "no source address is known"
            return f"{shown}; rule needs {self.networks_label}"
        number, version = int(source), source.version
        if any(version == v and number & mask == net for v, net, mask in self.network_ints):
            return None
        return f"source {source} is not in {self.networks_label}"

    def conditions_refusal(self, at: datetime, source: IPAddress | None, raw: str | None) -> str | None:
        """The first unmet condition (time window, then source), or None."""
        return self.window_refusal(at) or self.source_refusal(source, raw)

    def who_label(self) -> str:
        """The rule's ``who`` as people read it."""
        who = self.rule.who
        parts = [
            f"{kind} {', '.join(values)}"
            for kind, values in (("subjects", who.subjects), ("groups", who.groups), ("issuers", who.issuers))
            if values
        ]
        parts += [f"claim {name}={value}" for name, value in who.claims.items()]
        return "; ".join(parts)


def compile_rule(rule: Rule, order: int, default_ttl: timedelta) -> CompiledRule:
    """Compile one validated rule."""
    who = rule.who
    networks = tuple(ipaddress.ip_network(n, strict=False) for n in rule.from_)
    return CompiledRule(
        rule=rule,
        order=order,
        name=rule.name,
        role=rule.role,
        is_deny=rule.effect == "deny",
        needs_approval=rule.needs_approval,
        approval=rule.approval,
        guardrails=rule.guardrails,
        mask=MappingProxyType(dedupe_mask(rule.mask)),
        direct_login=rule.allows_direct_login,
        rank=(ROLE_RANK.get(rule.role or "", CUSTOM_RANK), -order),
        databases=Matcher.of(rule.databases),
        subjects=Matcher.of(who.subjects) if who.subjects else None,
        groups=Matcher.of(who.groups) if who.groups else None,
        issuers=Matcher.of(who.issuers) if who.issuers else None,
        claims=tuple(
            (tuple(name.split(".")), Matcher.of([value] if isinstance(value, str) else value))
            for name, value in who.claims.items()
        ),
        window=_window(rule),
        networks=networks,
        networks_label=", ".join(str(n) for n in networks),
        network_ints=tuple((n.version, int(n.network_address), int(n.netmask)) for n in networks),
        max_ttl=rule.max_ttl or (rule.approval.max_duration if rule.approval else None) or default_ttl,
    )


def _window(rule: Rule) -> TimeWindow | None:
    when = rule.when
    if when is None:
        return None
    hours = parse_hours(when.hours) if when.hours else None
    days = when.days
    return TimeWindow(
        zone=parse_zone(when.tz),
        days=parse_days(days) if days else None,
        hours=hours,
        start=when.start,
        until=when.until,
        label_days=days if isinstance(days, str) else ",".join(days or []),
        label_hours=f"{format_minutes(hours[0])}-{format_minutes(hours[1])}" if hours else "",
    )


@dataclass(frozen=True, slots=True)
class DatabaseIndex:
    """The rules that can apply on one database, keyed by the exact group or subject they require."""

    by_group: Mapping[str, tuple[CompiledRule, ...]]
    by_subject: Mapping[str, tuple[CompiledRule, ...]]
    general: tuple[CompiledRule, ...]
    _seen: dict[tuple[tuple[str, ...], str], tuple[CompiledRule, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: Iterable[CompiledRule]) -> DatabaseIndex:
        """Index ``rules`` (already in file order)."""
        by_group: dict[str, list[CompiledRule]] = {}
        by_subject: dict[str, list[CompiledRule]] = {}
        general: list[CompiledRule] = []
        for rule in rules:
            if rule.groups is not None and not rule.groups.globs:
                for group in rule.groups.exact:
                    by_group.setdefault(group, []).append(rule)
            elif rule.subjects is not None and not rule.subjects.globs:
                for subject in rule.subjects.exact:
                    by_subject.setdefault(subject, []).append(rule)
            else:
                general.append(rule)
        return cls(
            {k: tuple(v) for k, v in by_group.items()}, {k: tuple(v) for k, v in by_subject.items()}, tuple(general)
        )

    def candidates(self, principal: Principal) -> tuple[CompiledRule, ...]:
        """Rules that could match ``principal``, in file order (``who`` still to be checked); memoised."""
        key = (tuple(principal.groups), principal.subject)
        hit = self._seen.get(key)
        if hit is None:
            if len(self._seen) >= _CANDIDATE_CACHE:
                self._seen.clear()
            hit = self._seen[key] = self._gather(principal)
        return hit

    def _gather(self, principal: Principal) -> tuple[CompiledRule, ...]:
        found = [self.general] if self.general else []
        found.extend(hit for group in principal.groups if (hit := self.by_group.get(group)))
        if hit := self.by_subject.get(principal.subject):
            found.append(hit)
        if not found:
            return ()
        if len(found) == 1:
            return found[0]
        return tuple(sorted(set(chain.from_iterable(found)), key=_order))


def _order(rule: CompiledRule) -> int:
    return rule.order


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A validated policy, compiled and indexed; immutable, so it can be swapped atomically."""

    source: PolicyFile
    rules: tuple[CompiledRule, ...]
    by_database: Mapping[str, DatabaseIndex]
    glob_database_rules: tuple[CompiledRule, ...]
    digest: str = ""
    _by_glob: dict[str, DatabaseIndex] = field(default_factory=dict)

    def index_for(self, database: str) -> DatabaseIndex:
        """The index of ``database`` (databases matched only by glob are indexed on first use, memoised)."""
        index = self.by_database.get(database) or self._by_glob.get(database)
        if index is None:
            index = DatabaseIndex.of(r for r in self.glob_database_rules if r.databases.matches(database))
            if len(self._by_glob) >= _GLOB_DATABASE_CACHE:
                self._by_glob.clear()
            self._by_glob[database] = index
        return index


def compile_policy(policy: PolicyFile, digest: str = "") -> CompiledPolicy:
    """Compile and index every rule of ``policy``."""
    rules = tuple(compile_rule(rule, order, policy.default_max_ttl) for order, rule in enumerate(policy.rules))
    names = {name for rule in rules for name in rule.databases.exact}
    glob_rules = tuple(rule for rule in rules if rule.databases.globs)
    by_database = {name: DatabaseIndex.of(r for r in rules if r.databases.matches(name)) for name in names}
    return CompiledPolicy(policy, rules, by_database, glob_rules, digest)
