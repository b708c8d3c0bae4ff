"""Combining the masks and guardrails of every rule that grants the chosen role: the strictest wins.

Pure and small; :func:`~sqlgate.policy.decide.decide` calls :func:`combine_masks` and
:func:`combine_guardrails` once per set of rules (memoised), and
:func:`~sqlgate.policy.explain.explain` calls the ``*_sources`` functions to show
which rule contributed what.

Masks: the union of every rule's ``mask``. When two rules mask the same selector
(compared without regard to case, as the masker matches) with different
functions, the stricter function wins, in the order
``null`` > ``redact`` > ``hash`` > ``last4`` > ``email`` (an unknown name counts as
strictest of all, so nothing is ever weakened by a typo the schema missed).
Two more steps keep one rule from weakening another's mask through the
masker's tie-breaking (a selector without globs wins over one with them, then
the first in the map): an exact selector that another rule's stricter glob
selector may cover (``customers.ssn: last4`` beside ``*.ssn: null``) takes the
stricter function, and the combined map lists the strictest functions first.
A rule's own exact-over-glob exceptions stand (only another rule's glob raises a
selector); a rule that masks alone keeps its map as written, while in a
combination its globs may be reordered too (masking more, never less).

Guardrails: present when any rule has guardrails (a rule without guardrails
never loosens another's). The denied classes, ``deny_functions`` and
``deny_tables`` are unions; ``require_where`` is true when any rule requires it;
``mode`` is ``enforce`` when any rule enforces, ``audit`` only when all of them audit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Protocol

from sqlgate.policy.model import Guardrails, StatementClass

# Strictest first: index 0 reveals nothing; the higher the index, the more a function reveals.
MASK_STRICTNESS = ("null", "redact", "hash", "last4", "email")
_STRICTNESS_RANK = {name: rank for rank, name in enumerate(MASK_STRICTNESS)}
_CLASS_ORDER: tuple[StatementClass, ...] = ("read", "write", "ddl", "dcl", "admin", "transaction", "session")


class Contributor(Protocol):
    """A rule as combining sees it (a :class:`~sqlgate.policy.compiled.CompiledRule`)."""

    @property
    def name(self) -> str:
        """The rule's name."""
        ...

    @property
    def guardrails(self) -> Guardrails | None:
        """The rule's guardrails."""
        ...

    @property
    def mask(self) -> Mapping[str, str]:
        """The rule's masks."""
        ...


@dataclass(frozen=True, slots=True)
class MaskSource:
    """The function a combined mask gives one selector, the rule it came from, and the rules it overrode."""

    selector: str
    function: str
    rule: str
    overridden: tuple[tuple[str, str], ...] = ()  # (rule, function) of the weaker masks it replaced
    via: str | None = None  # the other rule's glob selector whose function it took, when one did


def strictness(function: str) -> int:
    """The rank of a masking function: lower is stricter (unknown names are strictest)."""
    return _STRICTNESS_RANK.get(function, -1)


def stricter(first: str, second: str) -> str:
    """The stricter of two masking functions (``first`` on a tie)."""
    return second if strictness(second) < strictness(first) else first


def dedupe_mask(mask: Mapping[str, str]) -> dict[str, str]:
    """One rule's ``mask`` with selectors repeated in another case merged, the stricter function winning."""
    merged: dict[str, tuple[str, str]] = {}  # lower-cased selector -> (selector as first written, function)
    for selector, function in mask.items():
        current = merged.get(selector.lower())
        merged[selector.lower()] = (
            (selector, function) if current is None else (current[0], stricter(current[1], function))
        )
    return dict(merged.values())


def mask_sources(rules: Iterable[Contributor]) -> list[MaskSource]:
    """Every selector of the combined mask with the rule whose function won (see the module docstring)."""
    found: dict[str, MaskSource] = {}
    masking = 0
    for rule in rules:
        masking += bool(rule.mask)
        for selector, function in rule.mask.items():
            current = found.get(selector.lower())
            found[selector.lower()] = _merged(current, selector, function, rule.name)
    sources = list(found.values())
    if masking < 2:
        return sources
    sources = [_raised(source, sources) for source in sources]
    return sorted(sources, key=lambda source: strictness(source.function))  # stable: first-seen order otherwise


def combine_masks(rules: Iterable[Contributor]) -> dict[str, str]:
    """The combined mask of ``rules``: selector -> function, strictest functions first."""
    return {source.selector: source.function for source in mask_sources(rules)}


def _merged(current: MaskSource | None, selector: str, function: str, rule: str) -> MaskSource:
    if current is None:
        return MaskSource(selector, function, rule)
    if stricter(current.function, function) == current.function:
        return replace(current, overridden=(*current.overridden, (rule, function)))
    return MaskSource(current.selector, function, rule, (*current.overridden, (current.rule, current.function)))


def _raised(source: MaskSource, sources: list[MaskSource]) -> MaskSource:
    """``source`` with the strictest function of another rule's glob selector that may cover it."""
    if _has_glob(source.selector):
        return source
    result = source
    for other in sources:
        if (
            other.rule != source.rule
            and _has_glob(other.selector)
            and strictness(other.function) < strictness(result.function)
            and _may_cover(other.selector.lower(), source.selector.lower())
        ):
            lost = (*result.overridden, (result.rule, result.function))
            result = MaskSource(source.selector, other.function, other.rule, lost, via=other.selector)
    return result


def _has_glob(selector: str) -> bool:
    return any(char in selector for char in "*?[")


def _may_cover(pattern: str, selector: str) -> bool:
    """True when glob selector ``pattern`` may match a column that exact ``selector`` matches (erring towards yes)."""
    pattern_table, _, pattern_column = pattern.rpartition(".")
    table, _, column = selector.rpartition(".")
    if not fnmatchcase(column, pattern_column):
        return False
    if pattern_table in {"", "*"} or table == "":
        return True
    bare_pattern, bare_table = pattern_table.rpartition(".")[2], table.rpartition(".")[2]
    return fnmatchcase(table, pattern_table) or fnmatchcase(bare_table, bare_pattern)


def combine_guardrails(guardrails: Sequence[Guardrails | None]) -> Guardrails | None:
    """The strictest combination of ``guardrails`` (None entries add nothing); None when all are None."""
    present = [g for g in guardrails if g is not None]
    if len(present) <= 1:
        return present[0] if present else None
    denied = {cls for g in present for cls in g.deny}
    return Guardrails(
        deny=[cls for cls in _CLASS_ORDER if cls in denied],
        require_where=any(g.require_where for g in present),
        deny_functions=list(dict.fromkeys(f for g in present for f in g.deny_functions)),
        deny_tables=list(dict.fromkeys(t for g in present for t in g.deny_tables)),
        mode="enforce" if any(g.mode == "enforce" for g in present) else "audit",
    )


def guardrail_sources(rules: Iterable[Contributor]) -> list[tuple[str, Guardrails]]:
    """``(rule name, guardrails)`` of each rule that has guardrails, in order."""
    return [(rule.name, rule.guardrails) for rule in rules if rule.guardrails is not None]
