"""node-postgres (npm ``pg``, ``pg-copy-streams`` for COPY) through the gateway: pg_client.mjs runs the scenarios."""

from __future__ import annotations

import pytest

from tests.compat.harness import WRITER, client_environment, node_program, run_program, scenario_params

pytestmark = pytest.mark.needs_node


@pytest.fixture(scope="module")
def program(compat_gateway):
    argv = node_program("pg_client.mjs", ("pg", "pg-copy-streams"))
    return run_program(argv, client_environment(compat_gateway, *WRITER))


@pytest.mark.parametrize("scenario", scenario_params())
def test_node_postgres(program, scenario):
    program.check(scenario)
