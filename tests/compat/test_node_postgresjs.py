"""postgres.js (npm ``postgres``, porsager) through the gateway: postgresjs_client.mjs runs the scenarios.

postgres.js prepares every tagged query server-side by default and reconnects on its own after the
server ends a session (as it does against PostgreSQL), so ``terminate`` checks the new connection.
"""

from __future__ import annotations

import pytest

from tests.compat.harness import WRITER, client_environment, node_program, run_program, scenario_params

pytestmark = pytest.mark.needs_node

NOT_EXPOSED = "postgres.js gives a listener only the payload, and tells nobody its backend pid"


@pytest.fixture(scope="module")
def program(compat_gateway):
    argv = node_program("postgresjs_client.mjs", ("postgres",))
    return run_program(argv, client_environment(compat_gateway, *WRITER))


@pytest.mark.parametrize("scenario", scenario_params(missing={"notify_pid": NOT_EXPOSED}))
def test_postgres_js(program, scenario):
    program.check(scenario)
