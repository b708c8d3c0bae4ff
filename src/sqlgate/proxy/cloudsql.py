"""Relayed connections to Cloud SQL for PostgreSQL: the PostgreSQL login inside the instance's TLS stream.

The engine-neutral part (Admin API calls, ephemeral certificates and their
refresh, the TLS context, which IAM identity logs in) is :mod:`sqlgate.cloudsql`;
its docstring also describes ``service_accounts`` (impersonated service accounts,
one per privilege level). Here: TLS 1.3 to the instance's server-side proxy on
port 3307 with the certificate of the lease's identity, then the ordinary
PostgreSQL login as the IAM database user, with no password (the token is in
the certificate). The gateway's Google credentials come from Application
Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, the metadata server,
...). A cancel request for a relayed session goes to the instance the same way:
a new TLS connection with the certificate the session's connection used.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref

from sqlgate.cloudsql import (
    SERVER_PROXY_PORT,
    CloudSqlDialer,
    CloudSqlDialers,
    InstanceName,
    connect_failure,
    parse_connect_settings,
    require_engine,
)
from sqlgate.errors import UpstreamError
from sqlgate.pgwire import UpstreamHandshake, UpstreamLogin
from sqlgate.pgwire.startup import CancelRequest
from sqlgate.proxy.upstream import CONNECT_TIMEOUT, Upstream, UpstreamProtocol

__all__ = [
    "CloudSqlDialer",
    "CloudSqlDialers",
    "InstanceName",
    "connect_cloudsql",
    "parse_connect_settings",
    "send_cloudsql_cancel",
]

log = logging.getLogger(__name__)


async def connect_cloudsql(
    dialer: CloudSqlDialer,
    login: UpstreamLogin,
    lease_id: str,
    params_key: tuple[tuple[str, str], ...],
) -> Upstream:
    """A logged-in connection to the instance's PostgreSQL as ``login.user`` (an IAM database user).

    The certificate is that of the configured service account whose IAM user ``login.user`` is (impersonated),
    else the gateway's own.
    """
    service_account = dialer.service_account_for(login.user)
    info = await dialer.connect_info(service_account)
    require_engine(dialer, info, "POSTGRES", "PostgreSQL")
    ip = info.settings.ip
    loop = asyncio.get_running_loop()
    protocol: UpstreamProtocol | None = None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _transport, protocol = await loop.create_connection(
                UpstreamProtocol, ip, SERVER_PROXY_PORT, ssl=info.context, server_hostname=ip
            )
            handshake = UpstreamHandshake(login)
            protocol.write(handshake.start())
            while not handshake.done:
                for reply in handshake.receive(await protocol.read()):
                    protocol.write(reply.data)
    except BaseException as exc:
        if protocol is not None:
            protocol.close()
        dialer.invalidate(service_account)  # as the connector: any failure fetches a new certificate next time
        error = connect_failure(dialer, ip, exc)
        if error is None:
            raise
        raise error from exc
    if handshake.backend_key is None:
        protocol.close()
        raise UpstreamError("the Cloud SQL server sent no BackendKeyData")
    parameters = dict(handshake.parameters)
    status = handshake.transaction_status or "I"
    upstream = Upstream(
        protocol, parameters, handshake.backend_key, lease_id, params_key, ip, SERVER_PROXY_PORT, status
    )
    _cancel_contexts[upstream] = info.context
    return upstream


_cancel_contexts: weakref.WeakKeyDictionary[Upstream, ssl.SSLContext] = weakref.WeakKeyDictionary()
"""The TLS context each Cloud SQL connection was opened with, for its cancel requests (gone with it)."""


async def send_cloudsql_cancel(upstream: Upstream) -> bool:
    """Cancel what ``upstream`` runs if it is a Cloud SQL connection (TLS, its certificate); False if it is not."""
    context = _cancel_contexts.get(upstream)
    if context is None:
        return False
    key = upstream.backend_key
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _reader, writer = await asyncio.open_connection(
                upstream.host, upstream.port, ssl=context, server_hostname=upstream.host
            )
            writer.write(CancelRequest(key.process_id, key.secret_key).encode())
            await writer.drain()
            writer.close()
            await writer.wait_closed()
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        log.warning("could not forward a cancel request to Cloud SQL at %s: %s", upstream.host, exc)
    return True
