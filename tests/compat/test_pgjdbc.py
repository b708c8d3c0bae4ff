"""pgjdbc (Debian ``libpostgresql-jdbc-java``) through the gateway: Compat.java, compiled here, runs the scenarios.

It connects with ``prepareThreshold=5``: from the fifth run a PreparedStatement is a named server-side
statement, and pgjdbc re-executes it with Bind/Execute only, without Describe; ``simple`` uses a second
connection with ``preferQueryMode=simple``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.compat.harness import HERE, WRITER, client_environment, run_program, scenario_params

JAR = Path("/usr/share/java/postgresql.jar")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The directory holding Compat.class, or a skip naming what the machine lacks."""
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac is None or java is None:
        pytest.skip("a Java 17 JDK (java, javac) is not on PATH")
    if not JAR.is_file():
        pytest.skip(f"pgjdbc is not installed at {JAR}: apt-get install libpostgresql-jdbc-java")
    classes = tmp_path_factory.mktemp("pgjdbc")
    subprocess.run([javac, "-d", str(classes), "-cp", str(JAR), str(HERE / "Compat.java")], check=True, timeout=120)
    return classes


@pytest.fixture(scope="module")
def program(compat_gateway, compiled):
    argv = ["java", "-cp", f"{compiled}:{JAR}", "Compat"]
    return run_program(argv, client_environment(compat_gateway, *WRITER))


@pytest.mark.parametrize("scenario", scenario_params())
def test_pgjdbc(program, scenario):
    program.check(scenario)


def test_pgjdbc_reuses_server_side_statements(program):
    outcome = program.check("prepared")
    assert outcome["server_prepared"] >= 1
