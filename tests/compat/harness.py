"""Helpers of the compatibility suite: real PostgreSQL clients through a real gateway, a token as password.

Every client module runs the same scenarios (see ``SCENARIOS``) against one gateway per module; clients
written in another language (Node.js, Java) run them all in one program that prints a JSON line per
scenario, and the Python test of each scenario checks that line. Differences from PostgreSQL that the
gateway still has (issue 16) are ``xfail(strict=True)`` with the difference named, so fixing one shows up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.gateway import RunningGateway

HERE = Path(__file__).parent

WRITER = ("wade", ("writers",))

SCENARIOS = (
    "connect",
    "simple",
    "extended",
    "prepared",
    "copy",
    "notify",
    "notify_pid",
    "transaction",
    "savepoint",
    "cancel",
    "terminate",
)


@dataclass
class ProgramRun:
    """What a client program printed: one JSON object per scenario (``{"scenario": ..., "ok": ..., ...}``)."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    stderr: str = ""

    def result(self, scenario: str) -> dict[str, Any]:
        assert scenario in self.results, f"the program reported nothing for {scenario!r}; stderr:\n{self.stderr}"
        return self.results[scenario]

    def check(self, scenario: str) -> dict[str, Any]:
        """The scenario's result, failing the test with the program's own words when it did not pass."""
        outcome = self.result(scenario)
        assert outcome.get("ok") is True, outcome
        return outcome


def client_environment(gateway: RunningGateway, user: str, groups: tuple[str, ...]) -> dict[str, str]:
    """Where a client program connects: the gateway (token as password) and, for termination, the server."""
    return {
        **os.environ,
        "GW_HOST": "127.0.0.1",
        "GW_PORT": str(gateway.pg_port),
        "GW_DB": "demo",
        "GW_USER": user,
        "GW_PASSWORD": gateway.token(user, groups),
        "ADMIN_URL": gateway.pg_server.dsn(gateway.database),
    }


def run_program(argv: list[str], env: dict[str, str], cwd: Path = HERE, timeout: float = 90) -> ProgramRun:
    """Run a client program and collect its scenario lines; a line that is not JSON is kept as stderr."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    run = ProgramRun(stderr=done.stderr)
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            run.stderr += line + "\n"
            continue
        run.results[record["scenario"]] = record
    assert run.results, f"exit {done.returncode}; stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return run


def scenario_params(*, known: dict[str, str] | None = None, missing: dict[str, str] | None = None) -> list[Any]:
    """Every scenario as a pytest param; ``known`` differences xfail strictly, ``missing`` ones skip (name: reason)."""
    marks: dict[str, Any] = {name: pytest.mark.xfail(strict=True, reason=why) for name, why in (known or {}).items()}
    marks |= {name: pytest.mark.skip(reason=why) for name, why in (missing or {}).items()}
    return [pytest.param(name, marks=[marks[name]] if name in marks else []) for name in SCENARIOS]


def node_program(script: str, packages: tuple[str, ...]) -> list[str]:
    """The argv that runs a Node.js client program, or a skip naming what the machine lacks."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js (node) is not on PATH")
    for package in packages:
        if not (HERE / "node_modules" / package).is_dir():
            pytest.skip(f"npm package {package!r} is not installed: run `npm ci` in tests/compat")
    return [node, str(HERE / script)]
