"""``server.workers: N``: N gateway processes on the same ports, sharing the state database.

``sqlgate serve`` with more than one worker becomes a supervisor. Before any event loop
or thread exists it forks the workers, worker 0 first: that one applies migrations and
makes the audit chain id and signing key, and the others start once it is ready, one
after another. Each worker is a whole replica (its own services, audit writer and
upstream pool) whose listeners bind with SO_REUSEPORT, so the kernel spreads new
connections over the workers. They differ only in their names: worker ``i > 0`` runs as
replica ``<name>-w<i>`` and writes audit chain ``<chain>-w<i>`` (one chain per writer, as
with replicas; ``sqlgate audit verify`` checks them all). Reaping takes turns through
the state database's lock (see ``broker/reaper.py``). A CancelRequest lands on whichever
worker the kernel picks: one that does not know the key hands it to the others over
Unix sockets in ``data_dir/workers`` (a directory only the gateway's user can enter);
the worker that knows the key checks the secret as usual.

SIGINT and SIGTERM to the supervisor reach every worker, which stops or drains as a
single gateway does; the supervisor exits 0 when all of them did. A worker that ends on
its own (a crash) stops the others and the supervisor exits 1, so the service manager
restarts the gateway whole rather than running with fewer workers than configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlgate.audit.storage import chain_id_for
from sqlgate.config import Settings, split_host_port
from sqlgate.errors import ConfigError
from sqlgate.replicas.names import replica_name

if TYPE_CHECKING:
    from sqlgate.proxy.listener import PgListener

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0  # seconds a worker may take to start (migrations, first keys, the audit writer)
RELAY_TIMEOUT = 2.0  # seconds to hand a cancel request to another worker
_FRAME = struct.Struct("!iB")  # a relayed cancel request: process id, secret length, then the secret


RunOne = Callable[[Settings, Callable[[Any], None]], None]
"""Runs one gateway with these settings until it is stopped, calling the callback once it serves."""


def worker_settings(settings: Settings, index: int) -> Settings:
    """The settings of worker ``index``: worker 0 runs as configured, the others under their own names and chains."""
    if index == 0:
        return settings
    suffix = f"-w{index}"
    name = replica_name(settings)[: 128 - len(suffix)] + suffix
    chain = chain_id_for(settings.data_dir, settings.audit.chain_id)[: 64 - len(suffix)] + suffix
    jsonl = settings.audit.jsonl_file
    if jsonl is not None:  # one rotating file per writer: rotation is not shared between processes
        jsonl = jsonl.with_name(f"{jsonl.stem}{suffix}{jsonl.suffix}")
    return settings.model_copy(
        update={
            "server": settings.server.model_copy(update={"replica_name": name}),
            "audit": settings.audit.model_copy(update={"chain_id": chain, "jsonl_file": jsonl}),
        }
    )


def check_workers(settings: Settings) -> None:
    """Refuse what cannot be shared: a listener on port 0 would give each worker a port of its own."""
    listeners = [settings.listen.postgres, settings.listen.http]
    if settings.listen.mysql is not None:
        listeners.append(settings.listen.mysql)
    for where in listeners:
        if split_host_port(where)[1] == 0:
            raise ConfigError(f"server.workers > 1 needs fixed ports: {where} would give each worker its own port")


def serve_workers(settings: Settings, run_one: RunOne, *, ready: Callable[[], None] | None = None) -> int:
    """Run ``server.workers`` gateways until SIGINT or SIGTERM; the exit status for the supervisor.

    ``run_one`` runs in each forked worker; ``ready`` is called once every worker serves.
    """
    check_workers(settings)
    supervisor = _Supervisor()
    previous = {sig: signal.signal(sig, supervisor.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for index in range(settings.server.workers):
            if supervisor.stopping:
                break
            supervisor.start(index, settings, run_one)
            if not supervisor.wait_ready(index):
                supervisor.stop(signal.SIGTERM)
                break
        else:
            if ready is not None:
                ready()
        return supervisor.wait_all()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Supervisor:
    """The workers' parent: forks them, forwards signals, collects their exit statuses."""

    def __init__(self) -> None:
        self.pids: dict[int, int] = {}  # pid -> worker index
        self.ready_pipes: dict[int, int] = {}  # worker index -> read end of its ready pipe
        self.stopping = False
        self.failed = False

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stop(signal.Signals(signum))

    def stop(self, sig: signal.Signals) -> None:
        self.stopping = True
        for pid in list(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def start(self, index: int, settings: Settings, run_one: RunOne) -> None:
        own = worker_settings(settings, index)  # before the fork: worker 0 has made the chain id by now
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_end)
            os._exit(_worker(own, run_one, write_end, (index, settings.server.workers)))
        os.close(write_end)
        self.pids[pid] = index
        self.ready_pipes[index] = read_end

    def wait_ready(self, index: int) -> bool:
        """True once worker ``index`` serves; False when it ended or did not start in time."""
        pipe = self.ready_pipes.pop(index)
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while not self.stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.error("worker %d did not start in %.0f s", index, READY_TIMEOUT)
                    self.failed = True
                    return False
                with contextlib.suppress(InterruptedError):
                    readable, _, _ = select.select([pipe], [], [], min(left, 0.5))
                    if readable:
                        if os.read(pipe, 1) == b"r":
                            return True
                        log.error("worker %d ended before it served", index)
                        self.failed = True
                        return False
            return False
        finally:
            os.close(pipe)

    def wait_all(self) -> int:
        """Wait for every worker; a worker ending unasked stops the others. 0 when all ended cleanly."""
        while self.pids:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            index = self.pids.pop(pid, None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if code != 0 or not self.stopping:
                if not self.stopping:
                    log.error("worker %d ended (status %d): stopping the others", index, code)
                self.failed = True
                self.stop(signal.SIGTERM)
        return 1 if self.failed else 0


def _worker(settings: Settings, run_one: RunOne, ready_pipe: int, place: tuple[int, int]) -> int:
    """A forked worker's life: default signal handling, run the gateway, say when it serves.

    ``place``: this worker's index and the number of workers.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # the gateway's loop installs its own handlers
    started: list[asyncio.Task[None]] = []

    def ready(gateway: Any) -> None:  # server.run.Gateway, not imported before the fork
        relay = CancelRelay(settings.data_dir / "workers", *place, gateway.pg)
        gateway.services.on_close.append(relay.close)
        started.append(asyncio.get_running_loop().create_task(_relay_then_ready(relay, ready_pipe)))

    try:
        run_one(settings, ready)
    except BaseException:  # the worker's last word, in a forked child that must not unwind
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


async def _relay_then_ready(relay: CancelRelay, ready_pipe: int) -> None:
    try:
        await relay.start()
    except OSError as exc:
        log.warning("cancel requests that reach another worker cannot be relayed: %s", exc)
    os.write(ready_pipe, b"r")
    os.close(ready_pipe)


class CancelRelay:
    """Hands cancel requests with a key this worker does not know to the other workers, and takes theirs."""

    def __init__(self, directory: Path, index: int, count: int, listener: PgListener) -> None:
        self.directory = directory
        self.index = index
        self.count = count
        self.listener = listener
        self._server: asyncio.AbstractServer | None = None

    def path(self, index: int) -> Path:
        """Worker ``index``'s socket."""
        return self.directory / f"{index}.sock"

    async def start(self) -> None:
        """Listen for the other workers' relayed requests; relay this worker's unknown keys to them."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        own = self.path(self.index)
        own.unlink(missing_ok=True)  # left by an earlier run
        self._server = await asyncio.start_unix_server(self._take, path=str(own))
        self.listener.unknown_cancel = self.relay

    async def close(self) -> None:
        """Stop taking relayed requests."""
        self.listener.unknown_cancel = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self.path(self.index).unlink(missing_ok=True)

    async def relay(self, process_id: int, secret: bytes) -> None:
        """Send the request to every other worker (only the one that knows the key acts on it)."""
        frame = _FRAME.pack(process_id, len(secret)) + secret
        for index in range(self.count):
            if index == self.index:
                continue
            try:
                async with asyncio.timeout(RELAY_TIMEOUT):
                    _reader, writer = await asyncio.open_unix_connection(str(self.path(index)))
                    writer.write(frame)
                    await writer.drain()
                    writer.close()
                    await writer.wait_closed()
            except (OSError, TimeoutError) as exc:
                log.info("could not relay a cancel request to worker %d: %s", index, exc)

    async def _take(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(RELAY_TIMEOUT):
                process_id, length = _FRAME.unpack(await reader.readexactly(_FRAME.size))
                secret = await reader.readexactly(length)
            await self.listener.cancel(process_id, secret, relayed=True)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass  # a worker stopping mid-request: the client may send its cancel again
        finally:
            writer.close()
