"""Hatchling build hook: the PostgreSQL relay's pure-Python hot path compiled with Cython, when it can be.

The modules in :data:`COMPILED_MODULES` are plain Python and stay the reference. When Cython
and a C compiler are present, each is also compiled as it is (Cython's pure-Python mode) into
an extension module, which Python imports in place of the ``.py`` beside it. Without Cython or
a compiler, or with ``SQLGATE_NO_EXTENSIONS=1``, the package is built as pure Python.

A wheel carries the extension modules; an editable install (``pip install -e .``) builds them
in place, beside the sources (``src/sqlgate/.../name.cpython-*.so``, ignored by git), and
removes them again when it builds pure Python. An in-place module does not follow later edits
of its ``.py``: reinstall after editing one (``tests/test_compiled.py`` fails until then).
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

COMPILED_MODULES = (
    "sqlgate/pgwire/codec.py",
    "sqlgate/pgwire/framing.py",
    "sqlgate/pgwire/frontend.py",
    "sqlgate/pgwire/notices.py",
    "sqlgate/pgwire/results.py",
    "sqlgate/policy/sql/classify.py",
    "sqlgate/policy/sql/shape.py",
    "sqlgate/proxy/relay.py",
    "sqlgate/access/masking.py",
)
"""The hot path's modules (under ``src/``), compiled when possible."""

EXTENSION_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


def extensions_disabled() -> bool:
    """True when ``SQLGATE_NO_EXTENSIONS`` asks for pure Python (any value but empty, ``0``, ``false``, ``no``)."""
    return os.environ.get("SQLGATE_NO_EXTENSIONS", "").strip().lower() not in ("", "0", "false", "no")


class CompiledHotPath(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles :data:`COMPILED_MODULES` for wheels and editable installs; silently pure Python otherwise."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile, then ship the extension modules (wheel) or leave them beside their sources (editable)."""
        if self.target_name != "wheel":
            return
        src = Path(self.root) / "src"
        editable = version == "editable"
        if editable:
            _remove_in_place(src)
        if extensions_disabled():
            return
        build_dir = tempfile.mkdtemp(prefix="sqlgate-extensions-")
        self._build_dir: str | None = build_dir  # removed by finalize, once the wheel holds what it needs
        built = _compile(src, Path(build_dir))
        if not built:
            self._remove_build_dir()
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        for module, extension in built.items():
            if editable:
                shutil.copy2(extension, src / module)
            else:
                build_data["force_include"][str(extension)] = module

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the build directory once the wheel is written."""
        del version, build_data, artifact_path
        self._remove_build_dir()

    def _remove_build_dir(self) -> None:
        build_dir = getattr(self, "_build_dir", None)
        if build_dir is not None:
            shutil.rmtree(build_dir, ignore_errors=True)
            self._build_dir = None


def compiled_name(module: str) -> str:
    """Where the extension module of ``module`` (``sqlgate/x/y.py``) lies in the package: ``sqlgate/x/y<suffix>``."""
    return module.removesuffix(".py") + EXTENSION_SUFFIX


def _remove_in_place(src: Path) -> None:
    """Delete extension modules an earlier editable build left beside the sources (of any Python version)."""
    for module in COMPILED_MODULES:
        source = src / module
        for leftover in source.parent.glob(f"{source.stem}.*.so"):
            leftover.unlink()
        source.with_suffix(".c").unlink(missing_ok=True)


def _compile(src: Path, build_dir: Path) -> dict[str, Path]:
    """Each module's compiled extension (in ``build_dir``) by its name in the package; empty when it cannot be built."""
    try:
        from Cython.Build import cythonize  # noqa: PLC0415 - optional: without it the build is pure Python
        from setuptools import Distribution, Extension  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415
    except ImportError:
        return {}
    extensions = [
        Extension(module.removesuffix(".py").replace("/", "."), [str(src / module)]) for module in COMPILED_MODULES
    ]
    try:
        distribution = Distribution(
            {
                "name": "sqlgate",
                "ext_modules": cythonize(  # type: ignore[no-untyped-call,unused-ignore]
                    extensions, build_dir=str(build_dir / "c"), compiler_directives={"language_level": 3}, quiet=True
                ),
            }
        )
        command = distribution.get_command_obj("build_ext")
        command.build_lib = str(build_dir / "lib")
        command.build_temp = str(build_dir / "temp")
        command.ensure_finalized()
        command.run()
    except Exception:  # no C compiler, no Python headers, a module Cython cannot compile: pure Python it is
        return {}
    built = {compiled_name(module): build_dir / "lib" / compiled_name(module) for module in COMPILED_MODULES}
    return built if all(path.is_file() for path in built.values()) else {}
