"""The suite tells the truth: a required component's skip fails, slow tests wait for -m slow, one summary line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import skip_component

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = """
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="Node.js (node) is not on PATH; the oidc-provider tests need it")
def test_needs_node():
    pass

def test_not_applicable():
    pytest.skip("SQLite serialises writers itself; the row lock matters on PostgreSQL")

@pytest.mark.slow
def test_slow():
    pass
"""


def run_sample(tmp_path: Path, *args: str, require: str = "") -> subprocess.CompletedProcess[str]:
    """Run pytest on a sample file, with this suite's conftest hooks and markers."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: long-running\n")
    env = {k: v for k, v in os.environ.items() if k != "SQLGATE_REQUIRE"}
    env |= {"PYTHONPATH": str(ROOT), "SQLGATE_REQUIRE": require}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_without_requirements_skips_pass_and_are_summarised_in_one_line(tmp_path):
    result = run_sample(tmp_path)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 skipped, 1 deselected" in result.stdout
    summary = [line for line in result.stdout.splitlines() if line.startswith("skipped 2: ")]
    expected = (
        "skipped 2: node 1 (Node.js (node) is not on PATH; the oidc-provider tests need it) | "
        "not applicable 1 (SQLite serialises writers itself; the row lock matters on PostgreSQL)"
    )
    assert summary == [expected]


def test_a_required_component_that_skips_fails(tmp_path):
    result = run_sample(tmp_path, require="node,mariadb")
    assert result.returncode == 1, result.stdout
    assert "SQLGATE_REQUIRE requires 'node', but the test skipped: Node.js (node) is not on PATH" in result.stdout
    assert "1 skipped" in result.stdout  # the not-applicable case is never a failure


def test_slow_tests_run_with_m_slow(tmp_path):
    result = run_sample(tmp_path, "-m", "slow")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 3 deselected" in result.stdout


def test_unknown_required_component_is_a_usage_error(tmp_path):
    result = run_sample(tmp_path, require="nodejs")
    assert result.returncode == 4
    assert "unknown components ['nodejs']" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("reason", "component"),
    [
        ("needs MariaDB on 127.0.0.1:3306 (root, no password): refused", "mariadb"),
        ("needs opentelemetry-sdk (pip install opentelemetry-sdk), not a dependency", "otel"),
        ("needs PostgreSQL built with SSL in /usr/lib/postgresql (Debian package postgresql)", "postgres"),
        ("pgjdbc is not installed at /usr/share/java/postgresql.jar", "java"),
        ("npm package 'pg' is not installed: run `npm ci` in tests/compat", "node"),
        ("something nobody planned for", "other"),
    ],
)
def test_skip_reasons_name_their_component(reason, component):
    assert skip_component(reason) == component
