"""README's "A short tour", run as written: `sqlgate up` in a fresh folder and home, then every command.

The commands are read from the fenced ``sh`` blocks of that README section, so README and test
stay in step: editing a command there changes what runs here. Each command runs in bash in the
folder where `sqlgate up` ran, with the variables earlier commands set (``export`` and plain
assignments alike). The ``#   demo=> ...`` lines under a psql line are its script on stdin, and
what follows their ``->`` is checked in psql's output. Commands that cannot run here are listed
in EXCLUDED with the reason; an exclusion that no longer matches a README line fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlgate.embedded import BIN
from tests.server.test_up import free_port, listening, postgres_processes, wait_for

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## A short tour"

EXCLUDED = {
    "sqlgate login": "signs in at a real identity provider (device flow or browser)",
    "sqlgate token --aws": "needs AWS credentials",
    "sqlgate audit tail -f": "follows the log until interrupted",
}
PLACEHOLDERS = {"REQUEST_ID": "the id `sqlgate request` printed"}
MIN_COMMANDS = 15  # the tour has more than this; fewer means the parser lost some


@dataclass
class Command:
    """One command of the tour, with the psql script and expectations that follow it."""

    line: str
    stdin: str = ""
    expected: list[str] = field(default_factory=list)
    heredoc: list[str] = field(default_factory=list)


def tour_section() -> str:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def sh_blocks(section: str) -> list[list[str]]:
    return [block.splitlines() for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)]


def expectation(text: str) -> list[str]:
    """What psql must print for one ``-> ...`` note: the SQLSTATE and message, or the first value."""
    if error := re.match(r"ERROR (\w{5}) (.*?)(?: \(|$)", text):
        return [f"{error[1]}: {error[2]}"]
    return [re.split(r" |\.\.\.", text, maxsplit=1)[0]]


def commands(block: list[str]) -> list[Command]:
    found: list[Command] = []
    lines = iter(block)
    for raw in lines:
        line = raw.strip()
        if psql := re.match(r"#\s+demo=>\s+(.*?)\s+->\s+(.*)$", line):
            found[-1].stdin += psql[1] + "\n"
            found[-1].expected += expectation(psql[2])
            continue
        if not line or line.startswith("#"):
            continue
        command = Command(line)
        if heredoc := re.search(r"<<'(\w+)'", line):
            for body in lines:
                command.heredoc.append(body)
                if body.strip() == heredoc[1]:
                    break
        found.append(command)
    return found


def without_comment(line: str) -> str:
    """The command without its trailing ``# ...`` note (a ``#`` inside quotes is part of the command)."""
    quote = ""
    for at, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (at == 0 or line[at - 1].isspace()):
            return line[:at].rstrip()
    return line


def excluded(command: Command) -> str | None:
    return next((reason for key, reason in EXCLUDED.items() if key in command.line), None)


class Tour:
    """A bash session in the demo folder whose variables carry from one command to the next."""

    def __init__(self, folder: Path, home: Path, pg_port: int) -> None:
        self.folder, self.pg_port = folder, pg_port
        self.state = folder.parent / "tour-state.sh"
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", ""), str(BIN)])
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("SQLGATE_", "XDG_", "PG"))}
        self.env = {**keep, "HOME": str(home), "PATH": path}
        self.values: dict[str, str] = {}

    def run(self, command: Command) -> subprocess.CompletedProcess[str]:
        line = without_comment(command.line).replace("port=6543", f"port={self.pg_port}")
        for name, meaning in PLACEHOLDERS.items():
            if name in line:
                assert name in self.values, f"no value yet for {name} ({meaning}) in: {command.line}"
                line = line.replace(name, self.values[name])
        body = "\n".join([line, *command.heredoc])
        prelude = f"set -a\nsource {shlex.quote(str(self.state))}\n" if self.state.exists() else "set -a\n"
        script = f"{prelude}set -o pipefail\n{body}\nstatus=$?\nexport -p > {shlex.quote(str(self.state))}\n"
        script += "exit $status\n"
        stdin = ("\\set VERBOSITY verbose\n" + command.stdin) if command.stdin else ""
        return subprocess.run(
            ["bash", "-c", script],
            cwd=self.folder,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def variable(self, name: str) -> str:
        out = subprocess.run(
            ["bash", "-c", f'source {shlex.quote(str(self.state))}; printf %s "${name}"'],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout


def check(tour: Tour, command: Command) -> None:
    result = tour.run(command)
    shown = f"README command failed: {command.line}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, shown
    for expected in command.expected:
        assert expected in result.stdout + result.stderr, f"{expected!r} not in the output\n{shown}"
    if assigned := re.match(r"(?:export )?(\w+)=", command.line):
        assert tour.variable(assigned[1]), f"{assigned[1]} is empty after: {command.line}\n{shown}"
    if filed := re.search(r"request (\w+) filed", result.stdout):
        tour.values["REQUEST_ID"] = filed[1]


def start_demo(folder: Path, home: Path, pg_port: int, http_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQLGATE_", "XDG_"))}
    argv = [sys.executable, "-m", "sqlgate", "up", "--pg-port", str(pg_port), "--http-port", str(http_port)]
    with log.open("w") as out:
        return subprocess.Popen(argv, cwd=folder, env={**env, "HOME": str(home)}, stdout=out, stderr=subprocess.STDOUT)


def test_the_readme_parser_finds_the_tour():
    every = [c for block in sh_blocks(tour_section()) for c in commands(block)]
    assert len(every) >= MIN_COMMANDS
    for key in EXCLUDED:
        assert any(key in c.line for c in every), f"EXCLUDED names {key!r}, which the README tour no longer has"
    psql = next(c for c in every if c.line.startswith("psql "))
    assert "c***@example.com" in psql.expected
    assert "42501: refused by guardrail" in psql.expected
    assert without_comment('sqlgate a "b # c"   # note') == 'sqlgate a "b # c"'


def test_every_tour_command_works_as_typed(tmp_path):
    folder, home = tmp_path / "tour", tmp_path / "home"
    folder.mkdir()
    home.mkdir()
    pg_port, http_port, log = free_port(), free_port(), tmp_path / "up.log"
    proc = start_demo(folder, home, pg_port, http_port, log)
    ran: list[str] = []
    try:
        wait_for(lambda: "Ctrl-C stops everything" in log.read_text() or proc.poll() is not None)
        assert proc.poll() is None, log.read_text()[-3000:]
        banner = log.read_text()
        assert "sqlgate token --user alice --group analysts" in banner, banner  # found here without -c
        tour = Tour(folder, home, pg_port)
        for block in sh_blocks(tour_section()):
            for command in commands(block):
                if excluded(command) is None:
                    check(tour, command)
                    ran.append(command.line)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert any(line.startswith("sqlgate approve") for line in ran)
    assert any("audit verify --head" in line for line in ran)
    assert len(ran) >= MIN_COMMANDS - len(EXCLUDED)
    deadline = time.monotonic() + 20
    while postgres_processes(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not postgres_processes(folder)
    assert not listening(pg_port)
