"""The audit log's storage is background work: its thread yields the CPUs to the sessions it records.

On a busy machine the relay, the database server and the clients compete for the
same CPUs as the thread that writes audit batches into SQLite. That thread runs at
a lower scheduling priority, so it writes in the gaps rather than pre-empting a
session's round trip. It is never starved for long (the scheduler still gives it a
share), and the queue in front of it stays bounded: when it falls behind,
``audit.on_full`` applies as always. Measured with bench/proxy.py's setup on 2
shared CPUs, side by side with the thread at normal priority: 3-8% more TPS at 8
clients (in each of eight paired runs), mean latency at 1 client unchanged.

Only the storage thread is lowered. Lowering the whole writer process of
``audit.writer: process`` as well was measured too: no steadier gain, and a longer
latency tail (p99.9) when the CPUs are saturated, so it runs at normal priority.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

BACKGROUND_NICE = 5
"""How many nice levels below its creator the storage thread runs (Linux; elsewhere it is left alone)."""


def lower_thread_priority(levels: int = BACKGROUND_NICE) -> int | None:
    """Lower the calling thread's CPU priority by ``levels``; its new nice value, or None where not supported.

    On Linux a nice value belongs to a thread (and threads it starts inherit it).
    """
    if sys.platform != "linux":
        return None
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        nice = min(19, os.getpriority(os.PRIO_PROCESS, thread) + levels)
        os.setpriority(os.PRIO_PROCESS, thread, nice)
        return nice
    return None
