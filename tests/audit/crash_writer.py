"""Child process of the kill -9 test: writes security and statement events until it is killed.

Usage: ``python -m tests.audit.crash_writer STATE_URL KEY_FILE``. Prints ``ack <event id>``
(flushed) after each ``record()`` returns, i.e. once the event is durable.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlgate.audit.keys import Signer
from sqlgate.audit.log import AuditLog
from sqlgate.store import StateStore
from tests.audit.conftest import security, statement


async def main(url: str, key_file: str) -> None:
    store = await StateStore.open(url)
    log = AuditLog(store, Signer.load(Path(key_file)), "crash", checkpoint_every=50, queue_size=500, batch_size=200)
    await log.start()

    async def statements(worker: int) -> None:
        n = 0
        while True:
            await log.submit(statement(worker * 1_000_000 + n))
            n += 1
            if n % 100 == 0:
                await asyncio.sleep(0)

    async def securities() -> None:
        n = 0
        while True:
            event = security(n)
            await log.record(event)
            sys.stdout.write(f"ack {event.id}\n")
            sys.stdout.flush()
            n += 1

    await asyncio.gather(*(statements(w) for w in range(3)), securities(), securities())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
