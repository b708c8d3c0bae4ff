"""What the handshake state machines ask their driver to do (mitmproxy-style commands).

A machine takes bytes or a decision in and returns a list of actions, in order; the
driver (:mod:`sqlgate.proxy`, or a test) carries them out. Secrets never appear in a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlgate.pgwire.startup import StartupMessage


@dataclass(frozen=True, slots=True)
class Send:
    """Write these bytes to the peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StartTls:
    """Write ``reply`` (``S``), run the TLS handshake as server, then call ``tls_started()``."""

    reply: bytes = b"S"


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection (after writing what came before)."""


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """The connection was a CancelRequest for this backend key; forward it if the key maps to a backend."""

    process_id: int
    secret_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class StartupReceived:
    """The client's StartupMessage; decide, then call ``request_password()`` or ``fail()``."""

    startup: StartupMessage


@dataclass(frozen=True, slots=True)
class PasswordReceived:
    """The client's password (for sqlgate: the identity token); verify, then ``succeed()`` or ``fail()``."""

    password: str = field(repr=False)


Action = Send | StartTls | Disconnect | CancelRequested | StartupReceived | PasswordReceived
