"""The console's templates and static assets ship in the wheel (hatchling, as pip builds it)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

ROOT = Path(__file__).parent.parent.parent
CONSOLE = ROOT / "src" / "sqlgate" / "console"


def test_wheel_holds_every_template_and_asset(tmp_path):
    (wheel,) = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        f"sqlgate/console/{path.relative_to(CONSOLE).as_posix()}"
        for folder in ("templates", "static")
        for path in (CONSOLE / folder).iterdir()
    }
    assert {"sqlgate/console/templates/base.html", "sqlgate/console/static/htmx.min.js"} <= wanted
    assert wanted <= names, sorted(wanted - names)
