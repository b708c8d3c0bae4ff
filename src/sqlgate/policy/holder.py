"""PolicyHolder: the policy in force, reloaded from its file when the file changes.

:meth:`PolicyHolder.watch` polls the file's SHA-256 (not its mtime, which a quick
rewrite can leave unchanged) and reloads when it differs.

A changed file is validated and compiled off to the side, then swapped in with
one assignment, so a decision sees either the old policy or the new one, never a
mix. An invalid file changes nothing: the old policy stays in force, the error is
logged and kept in :attr:`PolicyHolder.last_error` for readiness and metrics.
Every reload attempt, good or bad, is recorded as a ``config.reload`` event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlgate.audit.events import AuditEvent, Auditor
from sqlgate.errors import ConfigError
from sqlgate.policy.compiled import CompiledPolicy, compile_policy
from sqlgate.policy.model import PolicyFile, load_policy_file

log = logging.getLogger(__name__)
EMPTY_POLICY = compile_policy(PolicyFile())


def load_policy(path: Path) -> CompiledPolicy:
    """Read, validate and compile the policy file at ``path`` (ConfigError lists every mistake)."""
    digest = _digest(path)
    return compile_policy(load_policy_file(path), digest)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


class PolicyHolder:
    """Holds the compiled policy in force; :meth:`reload` and :meth:`watch` keep it current."""

    def __init__(self, path: Path | None, auditor: Auditor) -> None:
        self.path = path
        self._auditor = auditor
        self._policy = EMPTY_POLICY
        self._seen: str | None = "not read yet"
        self._lock = asyncio.Lock()
        self.last_error: str | None = None
        self.loaded_at: datetime | None = None
        self.generation = 0

    @property
    def policy(self) -> CompiledPolicy:
        """The policy in force (the empty, deny-everything policy until one is loaded)."""
        return self._policy

    @property
    def healthy(self) -> bool:
        """True when the newest file on disk is the one in force."""
        return self.last_error is None

    def status(self) -> dict[str, Any]:
        """Readiness and metrics view: generation, load time, rule count, digest and the last error."""
        return {
            "file": str(self.path) if self.path else None,
            "generation": self.generation,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "rules": len(self._policy.rules),
            "digest": self._policy.digest or None,
            "healthy": self.healthy,
            "last_error": self.last_error,
        }

    async def load(self) -> CompiledPolicy:
        """First load at start-up: an invalid file raises ConfigError (fail fast)."""
        if self.path is None:
            self.loaded_at = datetime.now(UTC)
            return self._policy
        if not await self.reload(force=True):
            raise ConfigError(f"policy file {self.path} is invalid", problems=[self.last_error or ""])
        return self._policy

    async def reload(self, *, force: bool = False) -> bool:
        """Load the file if it changed; True when the policy in force is the file's current content."""
        if self.path is None:
            return True
        async with self._lock:
            seen = await asyncio.to_thread(_peek, self.path)
            if not force and seen == self._seen:
                return self.last_error is None
            self._seen = seen
            try:
                policy = await asyncio.to_thread(load_policy, self.path)
            except ConfigError as exc:
                return await self._refused(exc)
            await self._swap(policy)
            return True

    async def watch(self, interval: float = 2.0) -> None:
        """Poll the file every ``interval`` seconds until cancelled (run as a task)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload()
            except Exception:
                log.exception("policy reload failed unexpectedly; the policy in force is unchanged")

    async def _swap(self, policy: CompiledPolicy) -> None:
        await self._auditor.record(
            AuditEvent(
                type="config.reload",
                outcome="success",
                data={
                    "file": str(self.path),
                    "digest": policy.digest,
                    "rules": len(policy.rules),
                    "generation": self.generation + 1,
                },
            )
        )
        self._policy = policy
        self.generation += 1
        self.loaded_at = datetime.now(UTC)
        self.last_error = None
        log.info("policy %s loaded: %d rules (generation %d)", self.path, len(policy.rules), self.generation)

    async def _refused(self, exc: ConfigError) -> bool:
        self.last_error = str(exc)
        log.error("policy file refused, the previous policy stays in force: %s", exc)
        await self._auditor.record(
            AuditEvent(
                type="config.reload",
                outcome="failure",
                reason=str(exc)[:2000],
                data={"file": str(self.path), "generation": self.generation},
            )
        )
        return False


def _peek(path: Path) -> str | None:
    """The SHA-256 of the file's bytes, or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
