"""Run one gateway replica: services, the HTTP API, the PostgreSQL and (``listen.mysql``) MySQL listeners in one loop.

The HTTP listener serves HTTPS (the PostgreSQL listener's certificate) and plain HTTP on
one port; plain HTTP is refused from non-loopback clients unless ``api.allow_plaintext``
(see ``server/http_listener.py`` and ``api/transport.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn

from sqlgate import tracing
from sqlgate.api.app import create_app
from sqlgate.api.transport import PlaintextGuard, PlaintextRule
from sqlgate.config import Settings, split_host_port
from sqlgate.identity.devissuer import check_dev_issuer_exposure
from sqlgate.mysqlproxy.listener import MysqlListener
from sqlgate.proxy.listener import PgListener
from sqlgate.proxy.tls import http_server_context
from sqlgate.replicas.names import replica_name
from sqlgate.server.http_listener import DualListener, bind_sockets
from sqlgate.services import Services

log = logging.getLogger(__name__)

GC_THRESHOLD = 20_000  # allocations between first-generation collections (Python's default: 700)


class _Server(uvicorn.Server):
    """uvicorn on the gateway's own listener (HTTPS and plain HTTP on one port), without its signal handling."""

    def __init__(self, config: uvicorn.Config, tls_context: ssl.SSLContext, *, reuse_port: bool = False) -> None:
        super().__init__(config)
        self.tls_context = tls_context
        self.reuse_port = reuse_port  # server.workers > 1: the worker processes share the port

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Bind ``config.host:port`` and accept HTTPS and plain HTTP there (``sockets`` is not used)."""
        del sockets
        await self.lifespan.startup()
        config = self.config

        def create_protocol() -> asyncio.Protocol:
            protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )
            return protocol

        listeners = [
            DualListener(sock, create_protocol, self.tls_context)
            for sock in bind_sockets(config.host, config.port, config.backlog, reuse_port=self.reuse_port)
        ]
        for listener in listeners:
            listener.start()
        self.servers = listeners  # type: ignore[assignment]  # close(), wait_closed() and sockets, as uvicorn uses them
        self.started = True


@dataclass
class Gateway:
    """A running replica: its services, HTTP server and PostgreSQL listener."""

    services: Services
    http: _Server
    http_task: asyncio.Task[None]
    pg: PgListener
    mysql: MysqlListener | None = None

    @property
    def http_port(self) -> int:
        """The bound HTTP port (useful with port 0)."""
        servers = getattr(self.http, "servers", [])
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return split_host_port(self.services.settings.listen.http)[1]

    async def drain(self, seconds: float) -> int:
        """Stop accepting clients, say so on ``/readyz``, and let sessions finish for up to ``seconds``.

        Returns how many sessions were still open at the end (``stop`` then ends them with 57P01).
        The HTTP listener keeps answering, so probes see 503 and administrators can list sessions.
        """
        services = self.services
        services.draining = True
        self.pg.stop_accepting()
        if services.replicas is not None:
            try:
                await services.replicas.set_state("draining")
            except Exception as exc:
                log.warning("could not announce the drain in the state database: %s", exc)
        log.info("draining: %d session(s) open, up to %.0f s to finish", self._open(), seconds)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                for _ in itertools.count():  # sessions end in many places: watching the count is simplest
                    if not self._open():
                        break
                    await asyncio.sleep(0.05)
        left = self._open()
        log.info("drained: %d session(s) left to end", left)
        return left

    def _open(self) -> int:
        return max(self.pg.open_connections, len(self.services.sessions))

    async def stop(self) -> None:
        """Stop accepting, end sessions, close everything in order."""
        self.http.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.http_task
        await self.pg.close()
        if self.mysql is not None:
            await self.mysql.close()
        await self.services.aclose()
        if self.services.settings.tracing.otlp_endpoint:
            tracing.shutdown()


async def start_gateway(settings: Settings, *, insecure_dev: bool = False) -> Gateway:
    """Start a replica and return once both listeners accept connections."""
    check_dev_issuer_exposure(settings, insecure_dev)
    if settings.tracing.otlp_endpoint:
        tracing.configure(
            replica_name(settings), endpoint=settings.tracing.otlp_endpoint, service_name=settings.tracing.service_name
        )
    services = await Services.start(settings)
    try:
        pg = PgListener(services)
        await pg.start()
        mysql = None
        if settings.listen.mysql is not None:
            mysql = MysqlListener(services)
            await mysql.start()
        host, port = split_host_port(settings.listen.http)
        app = PlaintextGuard(create_app(services, pgwire_port=pg.port), PlaintextRule.from_settings(settings))
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            server_header=False,
            loop="none",
        )
        http = _Server(config, http_server_context(settings), reuse_port=settings.server.workers > 1)
        http_task = asyncio.create_task(http.serve(), name="sqlgate-http")
        await _until_started(http, http_task, settings.listen.http)
        log.info("HTTP listener on %s (HTTPS; plain HTTP %s)", settings.listen.http, _plaintext_rule(settings))
    except BaseException:
        await services.aclose()
        raise
    return Gateway(services, http, http_task, pg, mysql)


def _plaintext_rule(settings: Settings) -> str:
    if settings.api.require_tls:
        return "refused"
    return "from any client" if settings.api.allow_plaintext else "from loopback clients only"


async def _until_started(http: _Server, task: asyncio.Task[None], where: str) -> None:
    while not http.started:
        if task.done():
            task.result()  # raises what stopped it
            raise OSError(f"the HTTP listener on {where} did not start")
        await asyncio.sleep(0.02)


def settle_heap() -> None:
    """Once started: take the start-up heap out of the cyclic collector's way, and run it less often.

    Reference counting frees almost everything a session allocates; what costs a busy
    relay is the collector walking the long-lived heap (modules, caches, policy) again
    and again. Frozen objects are never walked; a larger first generation means fewer passes.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


async def serve_until_stopped(
    settings: Settings, *, insecure_dev: bool = False, ready: Callable[[Gateway], None] | None = None
) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly.

    SIGTERM drains first (:meth:`Gateway.drain`, up to ``server.drain_timeout``); SIGINT,
    or a second signal during the drain, ends the sessions at once. Either way the
    remaining sessions get 57P01 and the function returns (the process exits 0).
    """
    stop = asyncio.Event()
    received: list[signal.Signals] = []
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    gateway = await start_gateway(settings, insecure_dev=insecure_dev)
    settle_heap()
    try:
        if ready is not None:
            ready(gateway)
        await stop.wait()
        if received and received[0] == signal.SIGTERM:
            stop.clear()
            drain = asyncio.ensure_future(gateway.drain(settings.server.drain_timeout.total_seconds()))
            interrupted = asyncio.ensure_future(stop.wait())
            await asyncio.wait({drain, interrupted}, return_when=asyncio.FIRST_COMPLETED)
            for task in (drain, interrupted):
                task.cancel()
    finally:
        await gateway.stop()
