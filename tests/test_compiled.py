"""The hot path's compiled modules (hatch_build.py): built as asked, and never older than their sources.

An editable install compiles them in place; an edit of a ``.py`` afterwards is not in its
compiled module, which Python still imports. This fails until the package is reinstalled.
``SQLGATE_EXPECT_COMPILED`` (``1`` or ``0``; CI sets it) says which variant the install must be.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))
try:
    from hatch_build import COMPILED_MODULES
finally:
    sys.path.remove(str(ROOT))

MODULE_NAMES = [module.removesuffix(".py").replace("/", ".") for module in COMPILED_MODULES]


def _is_compiled(name: str) -> bool:
    return not str(importlib.import_module(name).__file__).endswith(".py")


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_a_compiled_module_is_as_new_as_its_source(name):
    module_file = Path(str(importlib.import_module(name).__file__))
    source = module_file.with_name(name.rsplit(".", 1)[1] + ".py")
    if module_file == source:
        return
    assert module_file.stat().st_mtime >= source.stat().st_mtime, (
        f"{module_file} is older than {source.name}: reinstall (pip install -e .) or build pure Python "
        "(SQLGATE_NO_EXTENSIONS=1 pip install -e .)"
    )


def test_the_modules_are_all_compiled_or_all_pure():
    compiled = {name: _is_compiled(name) for name in MODULE_NAMES}
    assert len(set(compiled.values())) == 1, compiled


def test_the_variant_is_the_one_ci_asked_for():
    wanted = os.environ.get("SQLGATE_EXPECT_COMPILED")
    if wanted is None:
        pytest.skip("SQLGATE_EXPECT_COMPILED is not set (CI sets it)")
    assert all(_is_compiled(name) == (wanted == "1") for name in MODULE_NAMES)
