"""Run an ASGI app under uvicorn, in a thread, on a free port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Literal, Self

import uvicorn


class ServerThread:
    """``with ServerThread(app) as server: server.url`` — uvicorn in its own thread and event loop."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Literal["auto", "on", "off"] = "auto",
        log_level: str = "warning",
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._config = uvicorn.Config(app, log_level=log_level, lifespan=lifespan, access_log=False)
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The app's base URL."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> Self:
        """Start serving; returns once the app accepts requests (raises if start-up failed)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sock,), name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._thread.join(1)
                raise RuntimeError(f"the app did not start on {self.url}") from self._error
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving (runs the app's shutdown) and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[sock]))
        except BaseException as exc:  # surfaced by start()
            self._error = exc
        finally:
            sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
