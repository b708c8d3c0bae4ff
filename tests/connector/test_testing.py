"""The helpers of sqlgate.connector.testing behave as documented."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from sqlgate.connector import Credential
from sqlgate.connector.testing import FaultProxy, StaticCredentials, StaticToken


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_fault_proxy_cuts_and_restores(pg_server):
    """While cut, connecting is refused and open connections are reset; restored, it works on the same port."""
    with FaultProxy(pg_server.host, pg_server.port) as proxy:
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        await asyncio.sleep(0.1)
        proxy.cut()
        assert await reader.read(1) == b"", "the open connection was reset"
        await close(writer)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(proxy.host, proxy.port)
        port = proxy.port
        proxy.restore()
        assert proxy.port == port
        _, writer = await asyncio.open_connection(proxy.host, proxy.port)
        await close(writer)
        assert proxy.connections >= 1


async def test_static_sources():
    credential = Credential("h", 1, "d", "u", "p")
    source = StaticCredentials(credential)
    assert await source.fetch() is credential
    assert source.fetches == 1
    assert (await StaticToken("t").token()).value == "t"
