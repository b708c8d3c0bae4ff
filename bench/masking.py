"""What masking costs: the lineage analysis in-process, and pgbench through a gateway with and without masks.

    python bench/masking.py [--seconds 8] [--rounds 2] [--scale 5]

Part one, in-process: the lineage analysis of a statement (parse + trace) the first
time, then for the same shape with other literals (the engine's cache), next to
the guardrail classification every statement already pays.

Part two, one run: an embedded PostgreSQL and two sqlgate gateways (`sqlgate serve`)
side by side, one whose grant masks nothing and one whose grant masks
``pgbench_accounts.abalance`` (the column ``pgbench -S`` reads: every row is
rewritten) and ``*.filler``. `pgbench -S` (simple and prepared protocol, 1 and 8
clients) runs against each, interleaved round by round; the bench prints TPS and
the ratio masked / unmasked.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import timeit
from pathlib import Path

from proxy import PGBENCH, pgbench, sqlgate
from sqlgate.access.masking import MaskingEngine, MaskRules
from sqlgate.embedded import EmbeddedPostgres
from sqlgate.policy.sql import classify, clear_caches
from sqlgate.policy.sql.catalog_model import CatalogModel
from sqlgate.policy.sql.lineage import analyze

MASKED_POLICY = (
    "rules:\n  - name: bench-masked\n    who: {groups: [bench]}\n    databases: [bench]\n    role: read\n"
    '    max_ttl: 1h\n    mask: {"pgbench_accounts.abalance": redact, "*.filler": redact}\n'
)
STATEMENTS = (
    "SELECT abalance FROM pgbench_accounts WHERE aid = {n}",
    "SELECT a.aid, a.abalance, b.bbalance FROM pgbench_accounts a JOIN pgbench_branches b USING (bid) WHERE a.aid = {n}",
)


def in_process() -> None:
    rows = [(1, "public", "pgbench_accounts", "r", i, c) for i, c in enumerate(["aid", "bid", "abalance", "filler"], 1)]
    rows += [(2, "public", "pgbench_branches", "r", i, c) for i, c in enumerate(["bid", "bbalance", "filler"], 1)]
    rows += [(100 + t, "public", f"t{t}", "r", i, f"c{i}") for t in range(500) for i in range(1, 10)]
    catalog = CatalogModel.build(rows, {}, [])
    engine = MaskingEngine(MaskRules({"pgbench_accounts.abalance": "redact"}, hash_key=b"k"), catalog)
    print("in-process, per statement (µs):")
    counter = iter(range(10**9))  # a new literal for every call
    for template in STATEMENTS:
        first = timeit.timeit(lambda t=template: analyze(t.format(n=next(counter)), catalog), number=2000) / 2000
        engine.analyze(template.format(n=0))
        cached = timeit.timeit(lambda t=template: engine.analyze(t.format(n=next(counter))), number=20000) / 20000

        def fresh_classify(t: str = template) -> None:
            clear_caches()
            classify(t.format(n=next(counter)))

        classified = timeit.timeit(fresh_classify, number=2000) / 2000
        print(
            f"  analysis {first * 1e6:7.1f}   same shape, other literals {cached * 1e6:5.1f}"
            f"   (guardrail classification, uncached {classified * 1e6:6.1f})   {template[:60]}"
        )


def end_to_end(seconds: int, rounds: int, scale: int) -> None:
    with EmbeddedPostgres() as server, tempfile.TemporaryDirectory() as tmp:
        server.create_database("bench")
        server.create_role("bench_read", options="NOLOGIN")
        subprocess.run(
            [
                PGBENCH,
                "-i",
                "-q",
                "-s",
                str(scale),
                "-h",
                server.host,
                "-p",
                str(server.port),
                "-U",
                "postgres",
                "bench",
            ],
            env={**os.environ, "PGPASSWORD": server.password},
            capture_output=True,
            check=True,
        )
        server.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench_read", dbname="bench")
        with (
            sqlgate(server, Path(tmp) / "plain") as (plain, _),
            sqlgate(server, Path(tmp) / "masked", name="masked", login_prefix="sgm", policy=MASKED_POLICY) as (
                masked,
                _,
            ),
        ):
            results: dict[tuple[int, str, str], list[float]] = {}
            cases = [(1, "simple"), (8, "simple"), (1, "prepared"), (8, "prepared")]
            for round_no in range(rounds):
                for clients, mode in cases:
                    for target in (plain, masked) if round_no % 2 == 0 else (masked, plain):
                        tps = pgbench(target, clients, seconds, mode, connect_each=False)[0]
                        results.setdefault((clients, mode, target.name), []).append(tps)
            print(f"\npgbench -S through the gateway, TPS (median of {rounds} rounds):")
            print(f"  {'case':<22}{'unmasked':>10}{'masked':>10}{'masked / unmasked':>20}")
            for clients, mode in cases:
                a = statistics.median(results[(clients, mode, plain.name)])
                b = statistics.median(results[(clients, mode, masked.name)])
                print(f"  {f'{clients} client(s), {mode}':<22}{a:>10,.0f}{b:>10,.0f}{b / a:>19.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--no-pgbench", action="store_true", help="only the in-process figures")
    args = parser.parse_args()
    in_process()
    if not args.no_pgbench:
        end_to_end(args.seconds, args.rounds, args.scale)


if __name__ == "__main__":
    main()
