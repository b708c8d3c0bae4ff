"""Step one for every front end: the caller's token -> a verified principal, with its audit record.

Every failure is recorded as ``auth.failure`` (the reason only: never the token),
until a source has failed ``auth.failures.threshold`` times: from then on its
failures, and the logins refused while it backs off, are summarised in one
``auth.failure`` record per source and ``auth.failures.summary_window`` with their
count (:mod:`sqlgate.access.throttle`). Success is recorded as ``auth.success`` once per wire login, and once per token
and protocol on HTTP and MCP, where each request carries the token again (the
authenticator caches the verification; the audit log need not repeat it either).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlgate import metrics
from sqlgate.access.throttle import FailureThrottle, Summary, claimed_subject, throttled_error
from sqlgate.audit.events import AuditEvent, PrincipalRef
from sqlgate.audit.log import AuditLog
from sqlgate.audit.process import AuditProcess
from sqlgate.config import FailuresConfig
from sqlgate.errors import AuditError, IdentityError
from sqlgate.identity.authenticator import Authenticator
from sqlgate.identity.principal import Principal

log = logging.getLogger(__name__)

_SEEN_TOKENS = 10_000
WIRE_PROTOCOLS = frozenset({"pgwire", "mysql"})
"""Protocols whose every login is a session of its own: each one is recorded."""


def bearer(header: str) -> str:
    """The token of an ``Authorization`` header value ``Bearer <token>``; IdentityError (401) otherwise."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise IdentityError(
            "send your identity token as `Authorization: Bearer <token>`",
            hint="get one with `sqlgate token` or `sqlgate login`",
        )
    return token.strip()


class Authentication:
    """Verifies tokens for the proxy, the API and MCP, and audits the outcome."""

    def __init__(
        self,
        authenticator: Authenticator,
        audit: AuditLog | AuditProcess,
        failures: FailuresConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authenticator = authenticator
        self.audit = audit
        self.throttle = FailureThrottle(failures or FailuresConfig(), clock)
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._summary_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def authenticate(self, token: str, source: str | None, *, protocol: str) -> Principal:
        """The verified principal of ``token`` from ``source``; IdentityError (audited) when it does not verify.

        A source or claimed subject backing off after failed logins gets
        :class:`~sqlgate.access.throttle.LoginThrottled` without its token being verified.
        """
        subject = claimed_subject(token)
        waiting = self.throttle.wait(source, subject)
        if waiting is not None:
            scope, seconds = waiting
            metrics.LOGINS_THROTTLED.labels(scope).inc()
            error = throttled_error(scope, seconds)
            await self._failure(source, error.message, protocol, throttled=True)
            raise error
        try:
            principal = await self.authenticator.authenticate(token, source)
        except IdentityError as exc:
            self.throttle.failed(source, subject)
            await self._failure(source, exc.message, protocol)
            raise
        self.throttle.succeeded(subject)
        if protocol in WIRE_PROTOCOLS or self._first_use(token, protocol):
            event = AuditEvent(
                type="auth.success",
                principal=PrincipalRef.of(principal),
                source=source,
                outcome="success",
                data={"protocol": protocol, "method": principal.method},
            )
            if protocol in WIRE_PROTOCOLS:
                await self.audit.record(event)
            else:
                await self.audit.submit(event)
        return principal

    async def _failure(self, source: str | None, reason: str, protocol: str, *, throttled: bool = False) -> None:
        """Record a failed login: on its own, or counted into its source's summary for the window."""
        if self.throttle.summarised(source, reason, throttled=throttled):
            metrics.LOGIN_FAILURES_SUMMARISED.inc()
            self._summaries_later()
            return
        await self.audit.record(
            AuditEvent(
                type="auth.failure", source=source, outcome="failure", reason=reason, data={"protocol": protocol}
            )
        )

    def _summaries_later(self) -> None:
        if self._summary_timer is not None:
            return
        delay = self.throttle.next_due
        if delay is None:
            return
        self._summary_timer = asyncio.get_running_loop().call_later(delay, self._summaries_due)

    def _summaries_due(self) -> None:
        self._summary_timer = None
        task = asyncio.ensure_future(self.record_summaries())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._summaries_later()

    async def record_summaries(self, *, everything: bool = False) -> None:
        """Write the summary records whose window has ended (``everything``: all of them, at shutdown)."""
        for summary in self.throttle.due(everything=everything):
            try:
                await self.audit.record(_summary_event(summary, self.throttle.window))
            except AuditError:
                log.warning("could not record %d failed logins from %s", summary.failures, summary.source)

    async def aclose(self) -> None:
        """Record every open summary (the gateway stops)."""
        if self._summary_timer is not None:
            self._summary_timer.cancel()
            self._summary_timer = None
        with contextlib.suppress(AuditError):
            await self.record_summaries(everything=True)
        for task in list(self._tasks):
            await task

    def _first_use(self, token: str, protocol: str) -> bool:
        key = hashlib.sha256(f"{protocol}\0{token}".encode()).digest()[:16]
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > _SEEN_TOKENS:
            self._seen.popitem(last=False)
        return True


def _summary_event(summary: Summary, window: float) -> AuditEvent:
    total = summary.failures + summary.throttled
    return AuditEvent(
        type="auth.failure",
        source=summary.source,
        outcome="failure",
        reason=f"{total} failed logins from this source (summary of {window:.0f} s)",
        data={
            "summary": True,
            "count": total,
            "failed": summary.failures,
            "throttled": summary.throttled,
            "since": (datetime.now(UTC) - timedelta(seconds=window)).isoformat(),
            "reasons": dict(sorted(summary.reasons.items(), key=lambda item: -item[1])[:10]),
        },
    )
