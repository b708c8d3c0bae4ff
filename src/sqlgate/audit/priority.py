"""The audit log's writing is background work: it yields the CPUs to the sessions it records.

On a busy machine the relay, the database server and the clients compete for the
same CPUs as the audit writer. The writer's thread (and the writer process, with
``audit.writer: process``) runs at a lower scheduling priority, so it writes in
the gaps rather than pre-empting a session's round trip. It is never starved for
long (the scheduler still gives it a share), and its queue stays bounded: when it
falls behind, ``audit.on_full`` applies as always. Measured with bench/proxy.py's
setup on 2 shared CPUs, side by side with the writer at normal priority: 3-8% more
TPS at 8 clients (in each of eight paired runs), mean latency at 1 client unchanged.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

BACKGROUND_NICE = 5
"""How many nice levels below the gateway the writer runs (Linux; elsewhere the priority is left alone)."""

_whole_process = False  # set in a writer process, whose threads inherit its main thread's lowered priority


def lower_process_priority() -> int | None:
    """In a writer process, before it starts any thread: lower the main thread (the others inherit it)."""
    global _whole_process  # noqa: PLW0603 - one fact per process, read by the writer threads it starts
    nice = _lower_calling_thread(BACKGROUND_NICE)
    _whole_process = nice is not None
    return nice


def lower_thread_priority() -> int | None:
    """In a writer thread: lower its priority, unless the whole process already runs lowered.

    Returns the thread's nice value, or None where priorities are left alone.
    """
    if _whole_process:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    return _lower_calling_thread(BACKGROUND_NICE)


def _lower_calling_thread(levels: int) -> int | None:
    """On Linux a nice value belongs to a thread, and threads started afterwards inherit it."""
    if sys.platform != "linux":
        return None
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        nice = min(19, os.getpriority(os.PRIO_PROCESS, thread) + levels)
        os.setpriority(os.PRIO_PROCESS, thread, nice)
        return nice
    return None
