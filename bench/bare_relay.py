"""A bare byte relay on uvloop: the ceiling for any Python proxy, measured beside sqlgate by bench/proxy.py.

    python bench/bare_relay.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT

Every byte from a client goes to a new upstream connection and back, unread:
no parsing, no policy, no audit. What separates it from pgbouncer is the cost of
Python and the event loop; what separates sqlgate from it is sqlgate's own work.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.client.transport is not None
        self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        del exc
        if self.client.transport is not None:
            self.client.transport.close()


class _Client(asyncio.Protocol):
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.upstream = await loop.create_connection(lambda: _Upstream(self), self.host, self.port)
        assert self.upstream.transport is not None
        for data in self.early:
            self.upstream.transport.write(data)
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None or self.upstream.transport is None:
            self.early.append(data)
        else:
            self.upstream.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        del exc
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


async def _serve(listen: int, host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: _Client(host, port), "127.0.0.1", listen)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
