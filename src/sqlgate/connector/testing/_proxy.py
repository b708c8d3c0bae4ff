"""A TCP proxy that cuts and restores connectivity on demand (after psycopg's tests/fix_proxy.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Self


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; :meth:`cut` refuses and resets, :meth:`restore` heals.

    While cut, new connections are refused (the port is closed) and open ones are
    reset, as when a database restarts or a network partitions. It runs its own
    event loop in a thread, so it can be driven from synchronous or async code.
    """

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = port
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    def start(self) -> Self:
        """Start listening (a free port unless one was given)."""
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Refuse new connections and reset open ones."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._call(self._listen())

    def stop(self) -> None:
        """Cut everything and stop the thread."""
        if self._thread.is_alive():
            self._call(self._cut())
            self._call(self._finish_tasks())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        if server is not None:
            await server.wait_closed()

    async def _finish_tasks(self) -> None:
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        writers = [client_writer]
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
            writers.append(server_writer)
            self.connections += 1
            self._pipes.update(writers)
            await asyncio.gather(
                _pump(client_reader, server_writer), _pump(server_reader, client_writer), return_exceptions=True
            )
        except OSError:
            pass  # the target refused: the client sees its connection closed
        finally:
            for writer in writers:
                self._pipes.discard(writer)
                writer.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
