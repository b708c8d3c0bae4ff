"""Delivering access-request events to webhooks: in the background, retried with backoff, never blocking.

:meth:`WebhookNotifier.request_event` builds the body once, puts one delivery per
matching webhook on a bounded queue and returns at once. A worker takes them off
and runs each delivery as its own task (a few at a time), so one slow receiver
does not hold up another. A delivery is retried after a network error, a timeout,
408/425/429 or a 5xx, waiting ``backoff`` and doubling it each time, ``retries``
times; a receiver's other 4xx answers end it. A delivery that fails for good, or
finds the queue full, is logged (the webhook named by scheme and host only: a
Slack URL's path is its secret; the HMAC key is never logged) and counted in
``sqlgate_webhook_deliveries_total``. Retries share one ``X-Sqlgate-Delivery`` id,
so receivers can drop duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from sqlgate import __version__
from sqlgate.config import Settings, WebhookConfig
from sqlgate.identity.principal import Principal
from sqlgate.notify import metrics
from sqlgate.notify.payload import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    EventName,
    backoff_delay,
    build_payload,
    encode,
    retryable,
    sign,
)
from sqlgate.policy.request_rows import AccessRequest

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000
CONCURRENCY = 8
CLOSE_GRACE = 5.0  # seconds deliveries in flight may finish when the gateway stops


@dataclass(frozen=True, slots=True)
class Webhook:
    """One configured webhook with its key read."""

    config: WebhookConfig
    secret: bytes | None

    @property
    def label(self) -> str:
        """How logs name it: scheme and host only."""
        parts = urlsplit(self.config.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one webhook."""

    webhook: Webhook
    event: EventName
    request_id: str
    body: bytes
    delivery_id: str


class WebhookNotifier:
    """Sends access-request events to the configured webhooks (a :class:`~sqlgate.policy.requests.RequestListener`)."""

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        *,
        gateway: str = "",
        console_url: str | None = None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.webhooks = tuple(webhooks)
        self.gateway = gateway
        self._console_url = console_url
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(queue_size)
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._client: httpx.AsyncClient | None = None
        self._worker: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, gateway: str = "") -> WebhookNotifier:
        """A notifier for ``notify.webhooks``; each key is read now (ConfigError when one cannot be)."""
        hooks = [Webhook(config, config.secret_value()) for config in settings.notify.webhooks]
        console = f"{settings.public_url}/ui/requests" if settings.public_url else None
        return cls(hooks, gateway=gateway, console_url=console)

    def start(self) -> None:
        """Start delivering (on the running event loop)."""
        if self._worker is None and self.webhooks:
            self._client = httpx.AsyncClient(
                headers={"User-Agent": f"sqlgate/{__version__}", "Content-Type": "application/json"},
                follow_redirects=False,
            )
            self._worker = asyncio.create_task(self._work(), name="sqlgate-webhooks")

    def request_event(self, event: EventName, request: AccessRequest, actor: Principal | None) -> None:
        """Queue ``event`` for every webhook that wants it; returns at once."""
        wanted = [hook for hook in self.webhooks if event in hook.config.events]
        if not wanted:
            return
        payload = build_payload(
            event, request, actor, sent_at=datetime.now(UTC), gateway=self.gateway, console_url=self._console_url
        )
        body = encode(payload)
        for hook in wanted:
            delivery = Delivery(hook, event, request.id, body, uuid.uuid4().hex)
            try:
                self._queue.put_nowait(delivery)
            except asyncio.QueueFull:
                metrics.DELIVERIES.labels(event, "dropped").inc()
                log.warning(
                    "webhook %s: the %s event of access request %s was dropped: %d deliveries are already waiting",
                    hook.label,
                    event,
                    request.id,
                    self._queue.qsize(),
                )

    async def drain(self) -> None:
        """Wait until every queued delivery has succeeded or failed for good (tests, shutdown)."""
        await self._queue.join()

    async def aclose(self) -> None:
        """Give deliveries in flight a few seconds, then stop."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE):
                await self.drain()
        self._worker.cancel()
        for task in list(self._running):
            task.cancel()
        for task in [self._worker, *self._running]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
        self._worker = None

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            await self._slots.acquire()
            task = asyncio.create_task(self._run(delivery), name="sqlgate-webhook-delivery")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, delivery: Delivery) -> None:
        try:
            delivered = await self._deliver(delivery)
            metrics.DELIVERIES.labels(delivery.event, "delivered" if delivered else "failed").inc()
        except Exception as exc:  # a bug here must not kill the worker; counted, logged by kind (no URL)
            metrics.DELIVERIES.labels(delivery.event, "failed").inc()
            log.error(  # noqa: TRY400 - the message could quote the URL: no traceback
                "webhook %s: delivering access request %s failed: %s",
                delivery.webhook.label,
                delivery.request_id,
                type(exc).__name__,
            )
        finally:
            self._slots.release()
            self._queue.task_done()

    async def _deliver(self, delivery: Delivery) -> bool:
        """True once the receiver answers 2xx; False after the last retry (logged)."""
        assert self._client is not None
        config = delivery.webhook.config
        headers = {EVENT_HEADER: f"request.{delivery.event}", DELIVERY_HEADER: delivery.delivery_id}
        if delivery.webhook.secret is not None:
            headers[SIGNATURE_HEADER] = sign(delivery.webhook.secret, delivery.body)
        problem = "no attempt made"
        attempts = config.retries + 1
        for attempt in range(attempts):
            try:
                response = await self._client.post(
                    config.url, content=delivery.body, headers=headers, timeout=config.timeout.total_seconds()
                )
            except httpx.HTTPError as exc:  # the message may quote the URL: only the kind is logged
                problem, again = type(exc).__name__, True
            else:
                if 200 <= response.status_code < 300:
                    return True
                problem, again = f"HTTP {response.status_code}", retryable(response.status_code)
            if not again or attempt + 1 == attempts:
                attempts = attempt + 1
                break
            metrics.RETRIES.labels(delivery.event).inc()
            await asyncio.sleep(backoff_delay(attempt, config.backoff))
        log.warning(
            "webhook %s: the %s event of access request %s was not delivered after %d attempt(s): %s",
            delivery.webhook.label,
            delivery.event,
            delivery.request_id,
            attempts,
            problem,
        )
        return False
