"""The issue's load test, shortened: the example app under load while logins rotate and the database restarts.

The full run is ``python bench/connector_load.py --clients 200 --duration 60``; this one
is marked slow (``pytest -m slow``) and asserts what the issue asks for.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_module(name: str) -> ModuleType:
    """A script of bench/, imported by name with bench/ at the end of sys.path.

    At the end, because bench/mysql.py would otherwise hide the ``mysql`` package (mysql-connector-python)
    from every test after this one; imported by name (not loaded from its path) because the script
    starts processes that import it again.
    """
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    return importlib.import_module(name)


@pytest.mark.slow
def test_example_app_under_load_with_rotation_and_a_restart():
    """No failure outside the restart window, every retried request succeeds, no login with an expired credential."""
    connector_load = _bench_module("connector_load")
    figures = connector_load.load_test(connector_load.arguments(["--clients", "40", "--duration", "20"]))
    figures.print()
    assert figures.requests > 100
    assert figures.minted >= 3, "logins rotated during the run"
    assert figures.failed_outside == 0
    assert figures.retried_ok == figures.retried
    assert (figures.expired_refused, figures.expired_accepted) == (0, 0)
    assert (figures.stale_active, figures.stale_idle) == (0, 0)
