"""Apply ``rls.sql`` to the demo database of ``sqlgate up`` (as the demo's admin login).

Run: python -m examples.fastapi_app.setup_rls [path/to/sqlgate.yaml]   (default .sqlgate/sqlgate.yaml)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg

from sqlgate.config import load_settings

RLS_SQL = Path(__file__).with_name("rls.sql")


async def apply(config: Path, alias: str = "demo") -> None:
    """Run rls.sql on database ``alias`` of the settings in ``config``."""
    database = load_settings(config).databases[alias]
    con = await asyncpg.connect(
        host=database.host,
        port=database.port,
        database=database.dbname,
        user=database.admin_user,
        password=database.admin_password_value(),
    )
    try:
        await con.execute(RLS_SQL.read_text())
    finally:
        await con.close()
    print(f"row-level security applied to {alias} ({database.host}:{database.port}/{database.dbname})")  # noqa: T201


if __name__ == "__main__":
    asyncio.run(apply(Path(sys.argv[1] if len(sys.argv) > 1 else ".sqlgate/sqlgate.yaml")))
