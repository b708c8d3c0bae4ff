r"""psql through the gateway: ``\d+``, ``\copy`` both ways, ``\password`` refused, ``\watch`` ended by Ctrl-C.

psql runs as its users run it, ``psql -X -v ON_ERROR_STOP=0 -f script`` with the token in ``PGPASSWORD``,
and the test reads what it printed. ``\password`` sends ``ALTER USER <name> PASSWORD '<scram verifier>'``:
the gateway refuses it (the login is the gateway's, issued per session) and psql goes on with the script.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.compat.harness import WRITER
from tests.gateway import RunningGateway

PSQL = Path("/usr/bin/psql")

SCRIPT = r"""
\d+ customers
\copy customers (id, name, region) TO '{exported}' WITH (FORMAT csv)
CREATE TEMP TABLE scratch (id integer, name text, region text);
\copy scratch FROM '{exported}' WITH (FORMAT csv)
SELECT 'copied=' || count(*) FROM scratch;
\password
SELECT 'still-connected=' || count(*) FROM customers;
"""


@pytest.fixture(scope="module")
def psql_run(
    compat_gateway: RunningGateway, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    r"""Run the script once as the writer; ``\password`` reads the new password twice from stdin."""
    if not PSQL.is_file():
        pytest.skip(f"psql is not installed at {PSQL}")
    workdir = tmp_path_factory.mktemp("psql")
    script = workdir / "habits.sql"
    script.write_text(SCRIPT.format(exported=workdir / "customers.csv"))
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(compat_gateway.pg_port),
        "PGDATABASE": "demo",
        "PGUSER": WRITER[0],
        "PGPASSWORD": compat_gateway.token(*WRITER),
        "PGSSLMODE": "disable",
    }
    argv = [str(PSQL), "-X", "-v", "ON_ERROR_STOP=0", "-f", str(script)]
    return subprocess.run(
        argv, env=env, input="n3w-Passw0rd\nn3w-Passw0rd\n", capture_output=True, text=True, timeout=60, check=False
    )


def test_describe_shows_the_tables_columns(psql_run):
    described = psql_run.stdout.split('Table "public.customers"', 1)
    assert len(described) == 2, psql_run.stdout + psql_run.stderr
    for column in ("id", "name", "email", "ssn", "region"):
        assert f"\n {column} " in described[1], described[1]


def test_copy_out_and_back_into_a_scratch_table(psql_run):
    lines = [line.strip() for line in psql_run.stdout.splitlines()]
    out, back = [line for line in lines if line.startswith("COPY ")]
    assert out == back != "COPY 0", psql_run.stdout + psql_run.stderr
    assert f"copied={out.removeprefix('COPY ')}" in lines


def test_password_is_refused_clearly_and_the_session_goes_on(psql_run):
    assert "the gateway issues the session's login and its password cannot be changed" in psql_run.stderr
    assert "n3w-Passw0rd" not in psql_run.stdout + psql_run.stderr
    assert any(line.strip().startswith("still-connected=") for line in psql_run.stdout.splitlines())
    assert psql_run.returncode == 0, psql_run.stderr


WATCH_SCRIPT = r"""
CREATE TEMP SEQUENCE ticks;
SELECT 'tick-' || nextval('ticks') AS tick, pg_sleep(CASE WHEN currval('ticks') > 2 THEN 60 ELSE 0 END) \watch 0.1
SELECT 'after-watch';
"""


def test_watch_ended_by_ctrl_c_cancels_the_running_query(compat_gateway: RunningGateway, tmp_path: Path):
    r"""``\watch`` repeats a query until Ctrl-C; Ctrl-C in the third run's 60 s sleep cancels it through the gateway.

    psql answers SIGINT with a CancelRequest on a new connection, as it does against PostgreSQL, and the
    server's "canceling statement due to user request" ends the watch long before the sleep would.
    """
    if not PSQL.is_file():
        pytest.skip(f"psql is not installed at {PSQL}")
    script = tmp_path / "watch.sql"
    script.write_text(WATCH_SCRIPT)
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(compat_gateway.pg_port),
        "PGDATABASE": "demo",
        "PGUSER": WRITER[0],
        "PGPASSWORD": compat_gateway.token(*WRITER),
        "PGSSLMODE": "disable",
    }
    with subprocess.Popen(
        [str(PSQL), "-X", "-f", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as psql:
        assert psql.stdout is not None
        seen = ""
        while "tick-2" not in seen:  # the third run, which sleeps, starts right after the second's output
            line = psql.stdout.readline()
            assert line, seen
            seen += line
        time.sleep(1)  # the third run is inside pg_sleep by now
        psql.send_signal(signal.SIGINT)
        rest, _ = psql.communicate(timeout=30)
    output = seen + rest
    assert "canceling statement due to user request" in output, output
    assert "tick-3" not in output, output
