"""The running services of one gateway replica, built from settings and closed in order.

The proxy and the API receive a :class:`Services` and call into it; nothing in
those packages builds a service itself. Start-up order follows the data flow
(store -> audit -> identity -> policy -> broker), shutdown the reverse, so every
action is still audited while later services stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlgate.access.pipeline import AccessPipeline
from sqlgate.audit.events import AuditEvent
from sqlgate.audit.log import AuditLog
from sqlgate.audit.process import AuditProcess
from sqlgate.broker.broker import Broker
from sqlgate.broker.reaper import Reaper
from sqlgate.config import Settings
from sqlgate.identity.authenticator import Authenticator
from sqlgate.identity.principal import Principal
from sqlgate.metrics import DECISIONS, REPLICA_INFO, unwatch_sessions, watch_sessions
from sqlgate.notify.webhooks import WebhookNotifier
from sqlgate.policy.decide import Decision, Grant, decide
from sqlgate.policy.grants import GrantCache
from sqlgate.policy.holder import PolicyHolder
from sqlgate.policy.requests import RequestService
from sqlgate.replicas.audit_keys import replica_audit_key
from sqlgate.replicas.hub import ReplicaHub
from sqlgate.replicas.names import INSTANCE_ID, replica_name
from sqlgate.sessions import SessionRegistry
from sqlgate.store import StateStore
from sqlgate.tracing import span

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a request needs, shared by the pgwire proxy and the HTTP API."""

    settings: Settings
    store: StateStore
    audit: AuditLog | AuditProcess
    authenticator: Authenticator
    policy: PolicyHolder
    broker: Broker
    reaper: Reaper
    requests: RequestService
    grants: GrantCache
    sessions: SessionRegistry = field(default_factory=SessionRegistry)
    notifier: WebhookNotifier | None = None
    """Webhooks told of access-request steps (``notify.webhooks``), through ``requests``."""
    deployment_id: str = ""
    replicas: ReplicaHub | None = None
    """This replica's part in a gateway of several (PostgreSQL state); None with SQLite."""
    draining: bool = False
    """Set on SIGTERM: readiness answers 503 while sessions finish."""
    access: AccessPipeline = field(init=False)
    """The access pipeline every front end calls (authenticate, authorize, mask), built at start."""
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Closers of what front ends built on these services (the API's pools), run after sessions end."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings, *, reaper: bool = True) -> Services:
        """Open the state store, start the audit log, load identity and policy, start the broker."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await StateStore.open(settings.state_url())
        audit: AuditLog | AuditProcess = (
            AuditProcess(settings) if settings.audit.writer == "process" else AuditLog.from_settings(settings, store)
        )
        try:
            await audit.start()
        except BaseException:
            await store.close()
            raise
        try:
            authenticator = Authenticator.from_settings(settings)
            await _first_keys(authenticator)
            policy = PolicyHolder(settings.policy_file, audit)
            await policy.load()
            broker = Broker(settings, store, audit)
            notifier = WebhookNotifier.from_settings(settings)
        except BaseException:
            await audit.aclose()
            await store.close()
            raise
        requests = RequestService(
            store, AfterCommitAuditor(audit), policy, pending_ttl=settings.requests.pending_ttl, listener=notifier
        )
        services = cls(
            settings, store, audit, authenticator, policy, broker, Reaper(broker), requests, GrantCache(requests)
        )
        services.deployment_id = await store.deployment_id()
        services.notifier = notifier
        notifier.gateway = services.deployment_id
        notifier.start()
        services.access = AccessPipeline(services)
        if not store.is_sqlite:
            services.replicas = ReplicaHub(
                store,
                services.sessions,
                broker,
                policy,
                name=replica_name(settings),
                heartbeat_timeout=settings.server.heartbeat_timeout,
                audit_key=replica_audit_key(settings),
            )
            try:
                await services.replicas.start()
            except BaseException:
                await services.aclose()
                raise
        if reaper:
            services.reaper.start()
        REPLICA_INFO.labels(replica_name(settings), INSTANCE_ID).set(1)
        watch_sessions(replica_name(settings), services.sessions)
        services._tasks.append(asyncio.create_task(policy.watch(), name="sqlgate-policy-watch"))
        services._tasks.append(asyncio.create_task(_expire_requests(requests), name="sqlgate-request-expiry"))
        return services

    def decide(
        self, principal: Principal, database: str, role: str | None, *, grants: Sequence[Grant] = ()
    ) -> Decision:
        """Policy's answer for ``principal`` on ``database`` now, from where the principal connects."""
        return decide(self.policy.policy, principal, database, role, datetime.now(UTC), principal.source, grants=grants)

    async def decide_with_grants(self, principal: Principal, database: str, role: str | None) -> Decision:
        """:meth:`decide`, counting approved access requests when they could change the answer."""
        with span("sqlgate.decide", {"sqlgate.principal": principal.key, "sqlgate.database": database}) as current:
            decision = self.decide(principal, database, role)
            if decision.outcome != "allow" or role is None:
                grants = await self.grants.get(principal, database)
                if grants:
                    decision = self.decide(principal, database, role, grants=grants)
            if current is not None:
                current.set_attribute("sqlgate.outcome", decision.outcome)
        DECISIONS.labels(decision.outcome).inc()
        return decision

    async def aclose(self) -> None:
        """End sessions, stop background work, then close broker, identity, audit and store."""
        await self.sessions.end_where(lambda _session: True, "the gateway is shutting down")
        unwatch_sessions(self.sessions)
        if self.replicas is not None:
            await self.replicas.stop()
        for close in self.on_close:
            await close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.notifier is not None:
            await self.notifier.aclose()
        await self.reaper.stop()
        await self.broker.close()
        await self.authenticator.aclose()
        await self.audit.aclose()
        await self.store.close()


class AfterCommitAuditor:
    """Audits access-request steps through the audit queue, written as soon as the step's transaction ends.

    RequestService records inside its own state-database transaction; waiting there for
    the audit writer's transaction would deadlock on SQLite (one writer at a time). Callers
    that acknowledge a step to a person first ``await audit.flush()``, so the record is
    durable before the answer leaves.
    """

    def __init__(self, audit: AuditLog | AuditProcess) -> None:
        self._audit = audit

    async def record(self, event: AuditEvent) -> None:
        """Queue ``event`` (written right after the caller's transaction)."""
        await self._audit.submit(event)

    def enqueue(self, event: AuditEvent) -> None:
        """Queue ``event``."""
        self._audit.enqueue(event)


async def _expire_requests(requests: RequestService, period: float = 30.0) -> None:
    """Expire grants whose time is up and requests nobody decided in time (each audited as request.expire)."""
    while True:
        await asyncio.sleep(period)
        try:
            await requests.expire_due()
        except Exception:
            log.exception("expiring access requests failed; retrying in %s s", period)


async def _first_keys(authenticator: Authenticator) -> None:
    """Fetch every issuer's keys once, so readiness is green before the first token; an outage is logged."""
    try:
        async with asyncio.timeout(10):
            await authenticator.refresh_keys()
    except Exception as exc:  # an unreachable issuer must not stop the gateway; readiness shows it
        log.warning("could not fetch every issuer's keys at start-up: %s", exc)
