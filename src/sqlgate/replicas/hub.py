"""The replica hub: this replica's presence, sessions and duties in the shared PostgreSQL state.

Every ``period`` (half a second) one pass:

1. beats this replica's heartbeat (``replicas``);
2. ends the sessions other replicas asked it to end (``session_end_requests``);
3. mirrors its live sessions into ``replica_sessions`` (new ones added, ended ones
   removed, statement counts updated), so every replica can list them;
4. forgets leases another replica revoked or reaped (:meth:`Broker.sync`), which
   ends its sessions on them;
5. reloads the policy file when it changed and announces the digest in force, and
   says so once when replicas disagree;
6. marks replicas whose heartbeat is older than ``server.heartbeat_timeout`` gone,
   and removes their sessions (a dead replica holds nothing; its leases are
   reaped on expiry by whichever replica holds the reaper's lock).

So an end request, a revocation or a policy change reaches every live replica
within a pass or two: well under two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sqlgate.errors import SqlgateError
from sqlgate.replicas.names import INSTANCE_ID
from sqlgate.replicas.tables import replica_sessions, replicas, session_end_requests
from sqlgate.store.tables import meta

if TYPE_CHECKING:
    from sqlgate.broker.broker import Broker
    from sqlgate.policy.holder import PolicyHolder
    from sqlgate.sessions import LiveSession, SessionRegistry
    from sqlgate.store import StateStore

log = logging.getLogger(__name__)

PERIOD = 0.5
END_CONFIRM_SECONDS = 3.0
POLICY_KEY = "policy_digest"


class EndNotConfirmed(SqlgateError):
    """The replica holding a session did not confirm it ended in time."""

    sqlstate = "57014"
    http_status = 504


class ReplicaHub:
    """One replica's part in a gateway of several (PostgreSQL state only)."""

    def __init__(  # noqa: PLR0913 - the services it ties together, and its timings
        self,
        store: StateStore,
        sessions: SessionRegistry,
        broker: Broker,
        policy: PolicyHolder,
        *,
        name: str,
        heartbeat_timeout: timedelta,
        audit_key: str | None = None,
        period: float = PERIOD,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.broker = broker
        self.policy = policy
        self.name = name
        self.instance = INSTANCE_ID
        self.heartbeat_timeout = heartbeat_timeout
        self.audit_key = audit_key
        self.period = period
        self._mirrored: dict[str, int] = {}  # session id -> statements last written
        self._announced: str | None = None
        self._disagreement: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._state = "up"

    # -- life ----------------------------------------------------------------

    async def start(self) -> None:
        """Register this replica and start the periodic pass."""
        now = _now()
        async with self.store.begin() as conn:
            await conn.execute(
                pg_insert(replicas).values(
                    instance=self.instance,
                    name=self.name,
                    state="up",
                    started_at=now,
                    heartbeat_at=func.now(),
                    audit_key=self.audit_key,
                )
            )
        log.info("replica %s (instance %s) joined the gateway", self.name, self.instance)
        self._task = asyncio.create_task(self._loop(), name="sqlgate-replica-hub")

    async def set_state(self, state: str) -> None:
        """Announce ``draining`` (or ``up``) to the other replicas."""
        self._state = state
        async with self.store.begin() as conn:
            await conn.execute(update(replicas).where(replicas.c.instance == self.instance).values(state=state))

    async def stop(self) -> None:
        """Stop the pass; this replica's sessions leave the shared list and it is marked gone."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            async with self.store.begin() as conn:
                await conn.execute(delete(replica_sessions).where(replica_sessions.c.instance == self.instance))
                await conn.execute(delete(session_end_requests).where(session_end_requests.c.instance == self.instance))
                await conn.execute(update(replicas).where(replicas.c.instance == self.instance).values(state="gone"))
        except SqlgateError as exc:
            log.warning("could not take replica %s out of the shared state: %s", self.name, exc)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("replica pass failed; trying again in %s s", self.period)
            await asyncio.sleep(self.period)

    async def run_once(self) -> None:
        """One pass (see the module docstring)."""
        await self._heartbeat()
        await self._serve_end_requests()
        await self._mirror_sessions()
        await self.broker.sync()
        await self._follow_policy()
        await self._sweep_gone()

    # -- sessions, as the API sees them ---------------------------------------

    async def list_sessions(self) -> list[dict[str, Any]]:
        """Every live session of every live replica, oldest first, each with its ``replica``."""
        rows = await self._fetch(
            select(replica_sessions.c.summary, replica_sessions.c.replica)
            .join(replicas, replicas.c.instance == replica_sessions.c.instance)
            .where(replica_sessions.c.instance != self.instance, replicas.c.state != "gone")
        )
        found = [{**session.summary(), "replica": self.name} for session in self.sessions.list()]
        found.extend({**json.loads(row.summary), "replica": row.replica} for row in rows)
        return sorted(found, key=lambda s: str(s["started_at"]))

    async def end_session(self, session_id: str, reason: str) -> str | None:
        """End ``session_id`` wherever it is held; the replica's name, or None when no replica holds it."""
        if await self.sessions.end(session_id, reason):
            return self.name
        rows = await self._fetch(
            select(
                replica_sessions.c.instance,
                replica_sessions.c.replica,
                replicas.c.state,
                (replicas.c.heartbeat_at < func.now() - self.heartbeat_timeout).label("silent"),
            )
            .join(replicas, replicas.c.instance == replica_sessions.c.instance)
            .where(replica_sessions.c.id == session_id)
        )
        if not rows:
            return None
        holder = rows[0]
        if holder.state == "gone" or holder.silent:
            await self._forget_sessions([session_id])
            return None
        async with self.store.begin() as conn:
            statement = pg_insert(session_end_requests).values(
                session_id=session_id, instance=holder.instance, reason=reason, requested_at=_now()
            )
            await conn.execute(statement.on_conflict_do_update(index_elements=["session_id"], set_={"reason": reason}))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + END_CONFIRM_SECONDS
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            if not await self._fetch(select(replica_sessions.c.id).where(replica_sessions.c.id == session_id)):
                return str(holder.replica)
        raise EndNotConfirmed(
            f"replica {holder.replica} was asked to end session {session_id} but did not confirm within "
            f"{END_CONFIRM_SECONDS:.0f} s",
            hint="it is ended as soon as that replica reads the request; list the sessions again to check",
        )

    # -- the pass --------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Beat (by the database's clock, so replicas' clocks need not agree); come back if marked gone."""
        async with self.store.begin() as conn:
            beat = await conn.execute(
                update(replicas)
                .where(replicas.c.instance == self.instance, replicas.c.state != "gone")
                .values(heartbeat_at=func.now())
            )
            if beat.rowcount:
                return
            await conn.execute(
                update(replicas)
                .where(replicas.c.instance == self.instance)
                .values(state=self._state, heartbeat_at=func.now())
            )
        self._mirrored.clear()  # the sweep removed them: write them again
        log.warning(
            "replica %s was marked gone while alive (silent longer than server.heartbeat_timeout); it is back",
            self.name,
        )

    async def _serve_end_requests(self) -> None:
        async with self.store.begin() as conn:
            rows = (
                await conn.execute(
                    delete(session_end_requests)
                    .where(session_end_requests.c.instance == self.instance)
                    .returning(session_end_requests.c.session_id, session_end_requests.c.reason)
                )
            ).all()
        for session_id, reason in rows:
            if not await self.sessions.end(session_id, reason):
                await self._forget_sessions([session_id])  # it had ended already

    async def _mirror_sessions(self) -> None:
        current = {session.id: session for session in self.sessions.list()}
        added = [session for sid, session in current.items() if sid not in self._mirrored]
        ended = [sid for sid in self._mirrored if sid not in current]
        counted = [s for sid, s in current.items() if sid in self._mirrored and s.statements != self._mirrored[sid]]
        if not (added or ended or counted):
            return
        now = _now()
        async with self.store.begin() as conn:
            if added:
                await conn.execute(
                    pg_insert(replica_sessions).on_conflict_do_nothing(),
                    [self._row(session, now) for session in added],
                )
            if ended:
                await conn.execute(delete(replica_sessions).where(replica_sessions.c.id.in_(ended)))
            if counted:
                await conn.execute(
                    update(replica_sessions)
                    .where(replica_sessions.c.id == bindparam("sid"))
                    .values(summary=bindparam("new_summary"), updated_at=now),
                    [{"sid": s.id, "new_summary": json.dumps(s.summary())} for s in counted],
                )
        for sid in ended:
            del self._mirrored[sid]
        for session in [*added, *counted]:
            self._mirrored[session.id] = session.statements

    def _row(self, session: LiveSession, now: datetime) -> dict[str, Any]:
        return {
            "id": session.id,
            "instance": self.instance,
            "replica": self.name,
            "summary": json.dumps(session.summary()),
            "started_at": session.started_at,
            "updated_at": now,
        }

    async def _follow_policy(self) -> None:
        await self.policy.reload()
        mine = self.policy.policy.digest or ""
        async with self.store.begin() as conn:
            announced = (await conn.execute(select(meta.c.value).where(meta.c.key == POLICY_KEY))).scalar()
            if mine and mine != self._announced:
                statement = pg_insert(meta).values(key=POLICY_KEY, value=mine, updated_at=_now())
                await conn.execute(
                    statement.on_conflict_do_update(index_elements=["key"], set_={"value": mine, "updated_at": _now()})
                )
                self._announced = announced = mine
        if announced and announced not in (mine, self._disagreement):
            self._disagreement = announced
            log.warning(
                "another replica runs policy %s, this one %s: give every replica the same policy file",
                announced[:12],
                mine[:12],
            )

    async def _sweep_gone(self) -> None:
        cutoff = func.now() - self.heartbeat_timeout
        async with self.store.begin() as conn:
            gone = (
                await conn.execute(
                    update(replicas)
                    .where(replicas.c.state != "gone", replicas.c.heartbeat_at < cutoff)
                    .values(state="gone")
                    .returning(replicas.c.instance, replicas.c.name)
                )
            ).all()
            if not gone:
                return
            instances = [row.instance for row in gone]
            await conn.execute(delete(replica_sessions).where(replica_sessions.c.instance.in_(instances)))
            await conn.execute(delete(session_end_requests).where(session_end_requests.c.instance.in_(instances)))
        for row in gone:
            log.warning("replica %s (instance %s) stopped answering: its sessions are gone", row.name, row.instance)

    async def _forget_sessions(self, ids: Sequence[str]) -> None:
        async with self.store.begin() as conn:
            await conn.execute(delete(replica_sessions).where(replica_sessions.c.id.in_(list(ids))))

    async def _fetch(self, query: Any) -> list[Any]:
        async with self.store.begin() as conn:
            return list((await conn.execute(query)).all())


def _now() -> datetime:
    return datetime.now(UTC)
