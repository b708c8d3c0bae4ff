"""Failed-login throttling, per source address and per claimed subject. Pure: the clock is passed in.

After ``threshold`` failures a source (or a subject) backs off: its next login is
refused without verifying the token for ``base_delay``, doubling with each further
failure up to ``max_delay``. A success clears its subject; a source or subject
without failures for ``forget_after`` starts afresh. Refusals during a back-off do
not lengthen it (a client behind a busy NAT is not locked out for good).

Audit volume: a source's first ``threshold`` failures are recorded one by one;
after that, its failures and refusals are counted and recorded once per
``summary_window`` as one record with the count (:meth:`FailureThrottle.due`).

At most ``max_tracked`` keys are kept; the oldest are forgotten first.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlgate.config import FailuresConfig
from sqlgate.errors import IdentityError

Clock = Callable[[], float]
_MAX_SUBJECT = 256


class LoginThrottled(IdentityError):
    """A login refused without verification: its source or subject is backing off after failed logins."""

    http_status = 429


@dataclass(slots=True)
class _Track:
    failures: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


@dataclass(slots=True)
class Summary:
    """Failed logins from one source in one window, recorded as one audit record."""

    source: str
    started: float
    failures: int = 0
    throttled: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class FailureThrottle:
    """Back-off state of sources and subjects, and the audit summaries owed."""

    def __init__(self, settings: FailuresConfig, clock: Clock) -> None:
        self.threshold = settings.threshold
        self.base = settings.base_delay.total_seconds()
        self.max = settings.max_delay.total_seconds()
        self.forget = settings.forget_after.total_seconds()
        self.window = settings.summary_window.total_seconds()
        self.max_tracked = settings.max_tracked
        self.clock = clock
        self._tracks: OrderedDict[tuple[str, str], _Track] = OrderedDict()
        self._summaries: dict[str, Summary] = {}

    def wait(self, source: str | None, subject: str | None) -> tuple[str, float] | None:
        """``(scope, seconds)`` to wait when ``source`` or ``subject`` is backing off, else None."""
        now = self.clock()
        for scope, key in (("source", source), ("subject", subject)):
            track = self._track(scope, key, now, create=False)
            if track is not None and track.blocked_until > now:
                return scope, track.blocked_until - now
        return None

    def failed(self, source: str | None, subject: str | None) -> None:
        """Count a failed login; past ``threshold``, the next login backs off (doubling each time)."""
        now = self.clock()
        for scope, key in (("source", source), ("subject", subject)):
            track = self._track(scope, key, now, create=True)
            if track is None:
                continue
            track.failures += 1
            track.last = now
            over = track.failures - self.threshold
            if over >= 0:
                track.blocked_until = now + min(self.max, self.base * 2 ** min(over, 62))

    def succeeded(self, subject: str | None) -> None:
        """A login of ``subject`` verified: its own back-off ends (its source's does not)."""
        if subject is not None:
            self._tracks.pop(("subject", subject), None)

    def summarised(self, source: str | None, reason: str, *, throttled: bool = False) -> bool:
        """True when this failure from ``source`` goes into its window's summary instead of a record of its own.

        Call after :meth:`failed` (or for a throttled refusal): a source's first
        ``threshold`` failures are recorded one by one, the rest are counted.
        """
        if source is None:
            return False
        now = self.clock()
        track = self._track("source", source, now, create=False)
        if not throttled and (track is None or track.failures <= self.threshold):
            return False
        summary = self._summaries.get(source)
        if summary is None:
            summary = self._summaries[source] = Summary(source, now)
        if throttled:
            summary.throttled += 1
        else:
            summary.failures += 1
        summary.reasons[reason] = summary.reasons.get(reason, 0) + 1
        return True

    def due(self, *, everything: bool = False) -> list[Summary]:
        """Summaries whose window has ended (or all of them), removed from the throttle."""
        now = self.clock()
        done = [s for s in self._summaries.values() if everything or now - s.started >= self.window]
        for summary in done:
            del self._summaries[summary.source]
        return done

    @property
    def next_due(self) -> float | None:
        """Seconds until the earliest open summary is due, or None when none is open."""
        if not self._summaries:
            return None
        started = min(s.started for s in self._summaries.values())
        return max(0.0, started + self.window - self.clock())

    def _track(self, scope: str, key: str | None, now: float, *, create: bool) -> _Track | None:
        if key is None:
            return None
        track = self._tracks.get((scope, key))
        if track is not None and now - track.last >= self.forget and track.blocked_until <= now:
            del self._tracks[(scope, key)]
            track = None
        if track is None and create:
            track = self._tracks[(scope, key)] = _Track(last=now)
            while len(self._tracks) > self.max_tracked:
                self._tracks.popitem(last=False)
        elif track is not None:
            self._tracks.move_to_end((scope, key))
        return track


def claimed_subject(token: str) -> str | None:
    """The ``iss#sub`` a JWT claims, read WITHOUT verifying it (only to throttle by it); None if it has none."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 16_384:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str):
        return None
    issuer = claims.get("iss") if isinstance(claims.get("iss"), str) else ""
    return f"{issuer}#{claims['sub']}"[:_MAX_SUBJECT]


def throttled_error(scope: str, seconds: float) -> LoginThrottled:
    """The error a backed-off login gets: what is throttled and for how long."""
    who = "this address" if scope == "source" else "this identity"
    return LoginThrottled(
        f"too many failed logins from {who}; try again in {max(1, round(seconds))} s",
        hint="check the token (`sqlgate token`, `sqlgate login`); failed logins back off (auth.failures)",
    )
