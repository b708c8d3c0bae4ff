"""notify: tell people when access requests change, through webhooks.

:mod:`~sqlgate.notify.payload` builds what is sent (pure: the JSON body with a
Slack-compatible ``text``, the HMAC-SHA256 signature, the retry schedule);
:mod:`~sqlgate.notify.webhooks` delivers it in the background with retries and
exponential backoff, so a slow or broken receiver never delays a request.
:class:`~sqlgate.policy.requests.RequestService` calls the notifier after each
committed step, so every front end (API, CLI, console, MCP) triggers it the same way.
"""

from sqlgate.notify.payload import EVENTS, SIGNATURE_HEADER, build_payload, sign
from sqlgate.notify.webhooks import WebhookNotifier

__all__ = ["EVENTS", "SIGNATURE_HEADER", "WebhookNotifier", "build_payload", "sign"]
