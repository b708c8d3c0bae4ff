"""Policy benchmarks: decide() over 1,000 rules, cached and uncached SQL classification.

Run: ``python bench/policy.py``. Prints each figure next to its target; no
assertions (timings depend on the machine), the ratio column says how far
inside or outside the target a figure is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlgate.identity.principal import Principal
from sqlgate.policy import PolicyFile, compile_policy, decide

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


def rate(label: str, fn: Callable[[], object], target: float, *, per_second: bool) -> None:
    """Time ``fn`` for about a second; print ops/s or µs/op against ``target``."""
    fn()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < 1.0:
        for _ in range(1000):
            fn()
        count += 1000
    if per_second:
        value = count / elapsed
        print(f"{label:<48} {value:>12,.0f} /s   target >= {target:,.0f} /s   ratio {value / target:5.2f}")
    else:
        value = elapsed / count * 1e6
        print(f"{label:<48} {value:>12.2f} µs   target <= {target:.0f} µs     ratio {target / value:5.2f}")


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


if __name__ == "__main__":
    bench_decide()
