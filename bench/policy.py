"""Policy benchmarks: decide() over 1,000 rules, cached and uncached SQL classification.

Run: ``python bench/policy.py``. Prints each figure (the best of five rounds)
next to its target; no assertions (timings depend on the machine), the ratio
column says how far inside (> 1) or outside (< 1) the target a figure is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlgate.identity.principal import Principal
from sqlgate.policy import Guardrails, PolicyFile, compile_policy, decide
from sqlgate.policy.masking import Masker, apply
from sqlgate.policy.sql import check, classify, clear_caches, uncached_classify

AT = datetime(2026, 11, 25, 12, tzinfo=UTC)


def thousand_rules() -> PolicyFile:
    """100 databases x 10 groups, a tenth with time windows and CIDRs, some glob and deny rules."""
    rules = []
    for i in range(1000):
        db, group = f"db{i % 100}", f"team{i // 100}"
        rule: dict[str, object] = {
            "name": f"r{i}",
            "who": {"groups": [group]},
            "databases": [db],
            "role": ("read", "write", "admin")[i % 3],
            "max_ttl": "1h",
        }
        if i % 10 == 0:
            rule["when"] = {"days": "mon-fri", "hours": "07:00-20:00", "tz": "Europe/Berlin"}
            rule["from"] = ["10.0.0.0/8", "2001:db8::/32"]
        if i % 250 == 0:
            rule = {"name": f"deny{i}", "effect": "deny", "who": {"groups": ["contractors"]}, "databases": ["db*"]}
        rules.append(rule)
    return PolicyFile.model_validate({"rules": rules})


def rate(label: str, fn: Callable[[], object], target: float | None, *, per_second: bool) -> None:
    """Time ``fn`` in five rounds of about 0.4 s; print the best round (others' load only slows rounds down)."""
    fn()
    best = float("inf")
    for _ in range(5):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < 0.4:
            for _ in range(500):
                fn()
            count += 500
        best = min(best, elapsed / count)
    micros = best * 1e6
    if target is None:
        print(f"{label:<48} {micros:>12.2f} µs   (no target)")
    elif per_second:
        value = 1 / best
        print(f"{label:<48} {value:>12,.0f} /s   target >= {target:,.0f} /s   ratio {value / target:5.2f}")
    else:
        print(f"{label:<48} {micros:>12.2f} µs   target <= {target:.0f} µs     ratio {target / micros:5.2f}")


def bench_decide() -> None:
    policy = compile_policy(thousand_rules())
    alice = Principal(
        "alice", "iss", "Alice", groups=("team3", "team7", "everyone"), expires_at=AT + timedelta(hours=1)
    )
    assert decide(policy, alice, "db42", None, AT, "10.1.2.3").allowed
    rate(
        "decide(), 1,000 rules, 3 groups",
        lambda: decide(policy, alice, "db42", None, AT, "10.1.2.3"),
        100_000,
        per_second=True,
    )
    rate(
        "decide(), 1,000 rules, role asked, time window",
        lambda: decide(policy, alice, "db40", "admin", AT, "10.1.2.3"),
        100_000,
        per_second=True,
    )


TYPICAL = "SELECT id, name, email FROM customers WHERE id = 42 AND status = 'active' ORDER BY name LIMIT 10"


def bench_classify() -> None:
    clear_caches()
    classify(TYPICAL)
    rate("classify(), cached (same text)", lambda: classify(TYPICAL), 5, per_second=False)
    counter = iter(range(10**9))
    rate(
        "classify(), same shape, new constant",
        lambda: classify(TYPICAL.replace("42", str(next(counter)))),
        50,
        per_second=False,
    )
    rate("classify(), uncached typical statement", lambda: uncached_classify(TYPICAL), 50, per_second=False)
    guardrails = Guardrails(deny=["write", "ddl", "dcl", "admin"])
    cached = classify(TYPICAL)
    rate("check(), read-only guardrails", lambda: check(guardrails, cached), 5, per_second=False)
    rate("classify(mysql), uncached typical", lambda: uncached_classify(TYPICAL, "mysql"), None, per_second=False)


def bench_masking() -> None:
    masker = Masker({"customers.email": "email", "*.ssn": "redact", "*.card": "last4"})
    columns = [("customers", "id"), ("customers", "email"), ("customers", "ssn"), ("orders", "card"), (None, "total")]
    row = ["1", "alice@example.com", "123-45-6789", "4242424242424242", "9.99"]
    plan = masker.columns_to_mask(columns)
    rate(
        "Masker.columns_to_mask(), known result shape", lambda: masker.columns_to_mask(columns), None, per_second=False
    )
    rate("masking one 5-column row (3 masked)", lambda: apply(plan, row), None, per_second=False)


if __name__ == "__main__":
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (figures scale with it)")
    bench_decide()
    bench_classify()
    bench_masking()
