"""Run the compatibility suite (tests/compat) and write README's compatibility table from its results.

    python tools/compat_table.py            # run, then rewrite the table in README.md
    python tools/compat_table.py --check    # run, print the table, exit 1 if a client test failed

Each row names the client, the version that ran (read from the installed package, the npm install,
the Debian jar or the binary itself), what its tests exercise, and what pytest reported for that
module. The table sits in README.md between the ``compat-table`` markers; the rest is left as it is.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "tests" / "compat"
README = ROOT / "README.md"
START, END = "<!-- compat-table:start -->", "<!-- compat-table:end -->"


@dataclass(frozen=True)
class Client:
    """A client of the suite: its test module, how to learn the version that ran, and what its tests do."""

    module: str
    name: str
    version_of: str  # "py:<dist>", "npm:<package>", "jar:<path>" or "bin:<path>"
    exercised: str


CLIENTS = (
    Client(
        "test_node_pg.py",
        "node-postgres (npm `pg`, `pg-copy-streams`)",
        "npm:pg",
        "all scenarios; the client sees 57P01 on termination",
    ),
    Client(
        "test_node_postgresjs.py",
        "postgres.js (npm `postgres`)",
        "npm:postgres",
        "all scenarios but the NOTIFY pid (it does not expose it); server-side prepared by default; "
        "reconnects after termination",
    ),
    Client(
        "test_pgjdbc.py",
        "pgjdbc (Debian `libpostgresql-jdbc-java`, Java 17)",
        "jar:/usr/share/java/postgresql.jar",
        "all scenarios; `prepareThreshold=5` (named statements, re-run without Describe); "
        "`preferQueryMode=simple`; 57P01 on termination",
    ),
    Client(
        "test_psycopg.py",
        "psycopg 3 (libpq 18)",
        "py:psycopg",
        "all scenarios, sync; async connection; pipeline mode with an error; `AdminShutdown` on termination",
    ),
    Client(
        "test_psycopg2.py",
        "psycopg2 (binary)",
        "py:psycopg2-binary",
        "all scenarios (SQL `PREPARE`/`EXECUTE`, `copy_expert`)",
    ),
    Client(
        "test_asyncpg.py", "asyncpg", "py:asyncpg", "all scenarios (statement cache, binary COPY, cancel on timeout)"
    ),
    Client(
        "test_sqlalchemy.py",
        "SQLAlchemy (psycopg, asyncpg)",
        "py:sqlalchemy",
        "repeated bound queries, a transaction with a failed nested savepoint, COPY both ways and LISTEN/NOTIFY "
        "with its pid through the pooled driver connection, cancel, and the pool invalidating and replacing a "
        "connection the server terminated",
    ),
    Client(
        "test_django.py",
        "Django ORM (psycopg 3)",
        "py:django",
        "`migrate` on a fresh database (a `write` grant that allows DDL), CRUD with a model, an `atomic()` block "
        "failing with `IntegrityError`, filters, a raw cursor and `raw()` with parameters; DCL still refused",
    ),
    Client(
        "test_psql.py",
        "psql (`-X -f script`, `PGPASSWORD`)",
        "bin:/usr/bin/psql",
        "`\\d+ customers`, `\\copy` out to a file and back into a scratch table, `\\password` refused (the gateway "
        "issues the login) and the script goes on, `\\watch` ended by Ctrl-C (the cancel reaches the server)",
    ),
)


def version(source: str) -> str:
    """The version of a client as installed here, or "not installed"."""
    kind, _, where = source.partition(":")
    try:
        if kind == "py":
            return metadata.version(where)
        if kind == "npm":
            return json.loads((COMPAT / "node_modules" / where / "package.json").read_text())["version"]
        if kind == "jar":
            with zipfile.ZipFile(where) as jar:
                manifest = jar.read("META-INF/MANIFEST.MF").decode()
            found = re.search(r"^(?:Bundle-Version|Implementation-Version): *(\S+)", manifest, re.MULTILINE)
            return found.group(1) if found else "unknown"
        if kind == "bin":
            out = subprocess.run([where, "--version"], capture_output=True, text=True, check=True).stdout
            number = re.search(r"\d+(?:\.\d+)+", out)  # "psql (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
            return number.group(0) if number else out.strip()
    except (OSError, KeyError, subprocess.CalledProcessError, metadata.PackageNotFoundError, zipfile.BadZipFile):
        return "not installed"
    raise ValueError(f"unknown version source {source!r}")


class Outcomes:
    """A pytest plugin counting each compat module's outcomes."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Count one phase's report: the call's outcome, or a setup that failed or skipped."""
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            module = Path(report.nodeid.split("::", 1)[0]).name
            self.counts.setdefault(module, Counter())[report.outcome] += 1


def run_suite() -> tuple[int, Outcomes]:
    """Run tests/compat in this process; the exit status and each module's outcomes."""
    outcomes = Outcomes()
    status = pytest.main([str(COMPAT), "-q", "-p", "no:randomly", "-p", "no:cacheprovider"], plugins=[outcomes])
    return int(status), outcomes


def table(outcomes: Outcomes) -> str:
    """README's table: client, version, what is exercised, and what this run reported."""
    lines = ["| Client | Version | Exercised | Last run |", "|---|---|---|---|"]
    for client in CLIENTS:
        counts = outcomes.counts.get(client.module, Counter())
        result = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "not run"
        lines.append(f"| {client.name} | {version(client.version_of)} | {client.exercised} | {result} |")
    return "\n".join(lines)


def rewrite_readme(text: str) -> None:
    """Put ``text`` between README's markers."""
    readme = README.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main() -> int:
    """Run the suite, then print or write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the table instead of writing README.md")
    args = parser.parse_args()
    status, outcomes = run_suite()
    text = table(outcomes)
    if args.check:
        sys.stdout.write(text + "\n")
    else:
        rewrite_readme(text)
        sys.stdout.write(f"README.md: compatibility table written ({len(CLIENTS)} clients)\n")
    return 1 if status not in (0, 5) else 0


if __name__ == "__main__":
    sys.exit(main())
