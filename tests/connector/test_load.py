"""The issue's load test, shortened: the example app under load while logins rotate and the database restarts.

The full run is ``python bench/connector_load.py --clients 200 --duration 60``; this one
is marked slow (``pytest -m slow``) and asserts what the issue asks for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import connector_load  # lives in bench/, a script directory


@pytest.mark.slow
def test_example_app_under_load_with_rotation_and_a_restart():
    """No failure outside the restart window, every retried request succeeds, no login with an expired credential."""
    figures = connector_load.load_test(connector_load.arguments(["--clients", "40", "--duration", "20"]))
    figures.print()
    assert figures.requests > 100
    assert figures.minted >= 3, "logins rotated during the run"
    assert figures.failed_outside == 0
    assert figures.retried_ok == figures.retried
    assert (figures.expired_refused, figures.expired_accepted) == (0, 0)
    assert (figures.stale_active, figures.stale_idle) == (0, 0)
