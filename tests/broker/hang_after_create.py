"""Run as a subprocess by test_reaper: mint one lease, then hang after CREATE ROLE until killed.

argv: state URL, DatabaseConfig as JSON. Prints ``created <login>`` once the role
exists (and before the lease is recorded active), then sleeps forever.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from sqlgate.audit.testing import MemoryAuditor
from sqlgate.broker import Broker
from sqlgate.broker.backends.base import MintSpec
from sqlgate.broker.backends.postgres import PostgresBackend
from sqlgate.config import DatabaseConfig, Settings
from sqlgate.store import StateStore
from tests.broker.conftest import ALIAS, principal


class HangingBackend(PostgresBackend):
    async def mint(self, spec: MintSpec) -> None:
        await super().mint(spec)
        print(f"created {spec.login}", flush=True)
        await asyncio.sleep(3600)


async def main(state_url: str, config_json: str) -> None:
    config = DatabaseConfig.model_validate_json(config_json)
    store = await StateStore.open(state_url)
    broker = Broker(
        Settings(databases={ALIAS: config}), store, MemoryAuditor(), backends={ALIAS: HangingBackend(config)}
    )
    await broker.lease(principal(), ALIAS, "read", timedelta(minutes=10))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
