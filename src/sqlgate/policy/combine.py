"""Combining the masks and guardrails of every rule that grants the chosen role: the strictest wins.

Pure and small; :func:`~sqlgate.policy.decide.decide` calls :func:`combine` once per
set of rules (memoised), :func:`~sqlgate.policy.explain.explain` calls the
``*_sources`` functions to show which rule contributed what.

Masks: the union of every rule's ``mask``. When two rules mask the same selector
(compared without regard to case, as the masker matches) with different
functions, the stricter function wins, in the order
``null`` > ``redact`` > ``hash`` > ``last4`` > ``email`` (an unknown name counts as
strictest of all, so nothing is ever weakened by a typo the schema missed).

Guardrails: present when any rule has guardrails (a rule without guardrails
never loosens another's). The denied classes, ``deny_functions`` and
``deny_tables`` are unions; ``require_where`` is true when any rule requires it;
``mode`` is ``enforce`` when any rule enforces, ``audit`` only when all of them audit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    overridden: tuple[tuple[str, str], ...] = ()  # (rule, function) of weaker masks on the same selector


def strictness(function: str) -> int:
    """The rank of a masking function: lower is stricter (unknown names are strictest)."""
    return _STRICTNESS_RANK.get(function, -1)


def stricter(first: str, second: str) -> str:
    """The stricter of two masking functions (``first`` on a tie)."""
    return second if strictness(second) < strictness(first) else first


def mask_sources(rules: Iterable[Contributor]) -> list[MaskSource]:
    """Every selector of the combined mask, in first-seen order, with the rule whose function won."""
    found: dict[str, MaskSource] = {}
    for rule in rules:
        for selector, function in rule.mask.items():
            key = selector.lower()
            current = found.get(key)
            if current is None:
                found[key] = MaskSource(selector, function, rule.name)
            elif stricter(current.function, function) != current.function:
                lost = (*current.overridden, (current.rule, current.function))
                found[key] = MaskSource(current.selector, function, rule.name, lost)
            else:
                found[key] = MaskSource(
                    current.selector, current.function, current.rule, (*current.overridden, (rule.name, function))
                )
    return list(found.values())


def combine_masks(masks: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The union of ``masks``; on the same selector (any case) the stricter function wins."""
    combined: dict[str, tuple[str, str]] = {}  # lower-cased selector -> (selector as first written, function)
    for mask in masks:
        for selector, function in mask.items():
            key = selector.lower()
            current = combined.get(key)
            combined[key] = (selector, function) if current is None else (current[0], stricter(current[1], function))
    return dict(combined.values())


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
