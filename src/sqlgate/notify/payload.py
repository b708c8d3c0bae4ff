"""What a webhook receives, built without I/O: the JSON body, its signature, the retry schedule.

The body (UTF-8 JSON)::

    {"event": "request.filed", "text": "Olga asks for role write on demo for 30m ...",
     "request": {...the request as GET /v1/requests/{id} shows it...},
     "actor": {"subject": ..., "issuer": ..., "name": ...} or null (the gateway itself),
     "gateway": "<deployment id>", "url": "<public_url>/ui/requests" or null, "sent_at": "<ISO 8601>"}

``text`` makes the body a valid Slack (and Mattermost, Teams-compatible) incoming-webhook
message; ``&``, ``<`` and ``>`` in people's words are escaped so a reason cannot mention
``@channel`` or forge a link. With a secret, the POST carries
``X-Sqlgate-Signature: sha256=<hex of HMAC-SHA256(secret, body)>``: the receiver recomputes
it over the raw body and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlgate.config import format_duration
from sqlgate.identity.principal import Principal
from sqlgate.policy.request_rows import AccessRequest

EventName = Literal["filed", "approved", "denied", "expired"]
EVENTS: tuple[EventName, ...] = ("filed", "approved", "denied", "expired")
SIGNATURE_HEADER = "X-Sqlgate-Signature"
EVENT_HEADER = "X-Sqlgate-Event"
DELIVERY_HEADER = "X-Sqlgate-Delivery"
MAX_BACKOFF = timedelta(minutes=5)
_MAX_QUOTED = 300  # characters of a reason quoted in `text` (the full reason is in `request`)


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret`` (constant-time; for receivers)."""
    return hmac.compare_digest(sign(secret, body), header.strip())


def backoff_delay(attempt: int, first: timedelta) -> float:
    """Seconds to wait after failed attempt ``attempt`` (0-based): ``first`` doubled each time, at most 5 minutes."""
    delay: timedelta = min(first * (2**attempt), MAX_BACKOFF)
    return delay.total_seconds()


def retryable(status: int) -> bool:
    """True for answers worth retrying: 408, 425, 429 and every 5xx (other 4xx will not change)."""
    return status in {408, 425, 429} or status >= 500


def build_payload(  # noqa: PLR0913 - one event's facts
    event: EventName,
    request: AccessRequest,
    actor: Principal | None,
    *,
    sent_at: datetime,
    gateway: str = "",
    console_url: str | None = None,
) -> dict[str, Any]:
    """The JSON body sent for ``event`` on ``request`` (``actor`` None: the gateway itself, e.g. expiry)."""
    return {
        "event": f"request.{event}",
        "text": event_text(event, request, actor, console_url),
        "request": request.to_dict(),
        "actor": None if actor is None else {"subject": actor.subject, "issuer": actor.issuer, "name": actor.name},
        "gateway": gateway,
        "url": console_url,
        "sent_at": sent_at.isoformat(),
    }


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def event_text(event: EventName, request: AccessRequest, actor: Principal | None, console_url: str | None) -> str:
    """One Slack-compatible sentence (mrkdwn) about the event."""
    who = _escape(request.requester_name)
    what = f"role *{_escape(request.role)}* on *{_escape(request.database)}*"
    tail = f" (request `{request.id}`, rule {_escape(request.rule)})"
    if console_url:
        tail += f" <{console_url}|open>"
    if event == "filed":
        needed = f"{request.min_approvals} approval" + ("s" if request.min_approvals != 1 else "")
        return (
            f"{who} asks for {what} for {format_duration(request.duration)}: {_quote(request.reason)}; "
            f"{needed} needed{tail}"
        )
    by = _escape(actor.name) if actor is not None else "the gateway"
    if event == "approved":
        until = request.expires_at.strftime("%Y-%m-%d %H:%M UTC") if request.expires_at else "?"
        return f"{by} approved {who}'s request for {what}: usable until {until}{tail}"
    if event == "denied":
        return f"{by} denied {who}'s request for {what}: {_quote(request.decision_reason or '')}{tail}"
    if request.decided_by is None:  # it never was decided: the pending request timed out
        return f"{who}'s request for {what} expired: {_escape(request.decision_reason or 'nobody decided')}{tail}"
    return f"{who}'s access to {what} has ended{tail}"


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return "(no reason given)"
    if len(text) > _MAX_QUOTED:
        text = text[: _MAX_QUOTED - 1] + "…"
    return f"“{_escape(text)}”"


def _escape(text: str) -> str:
    """Slack's three control characters, escaped as its docs ask."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
