"""The package surface: every exported name resolves, and no module in pgwire does I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import sqlgate.pgwire

PACKAGE = Path(sqlgate.pgwire.__file__).parent
IO_MODULES = {"socket", "asyncio", "ssl", "selectors", "uvloop", "subprocess", "http", "urllib", "os"}


def test_exported_names_resolve():
    for name in sqlgate.pgwire.__all__:
        assert getattr(sqlgate.pgwire, name) is not None


def test_pgwire_imports_no_io_module():
    """Sans-IO by construction: sockets and event loops belong to sqlgate.proxy."""
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in IO_MODULES]
    assert offenders == []
