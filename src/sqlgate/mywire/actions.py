"""What the login state machines ask their driver to do (mitmproxy-style commands); no secret in a repr."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlgate.mywire.handshake import HandshakeResponse, HandshakeV10
from sqlgate.mywire.results import Err, Ok


@dataclass(frozen=True, slots=True)
class Send:
    """Write these bytes to the peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StartTls:
    """Run the TLS handshake on the connection now (as server towards a client, as client towards a server)."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection (after writing what came before)."""


@dataclass(frozen=True, slots=True)
class LoginReceived:
    """The client said who it is (HandshakeResponse41): decide, then ``request_password()`` or ``fail()``."""

    response: HandshakeResponse


@dataclass(frozen=True, slots=True)
class PasswordReceived:
    """The client's clear-text password (for sqlgate: the identity token); verify, then ``succeed()`` or ``fail()``."""

    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """The server accepted the login: its greeting and its OK packet."""

    handshake: HandshakeV10
    ok: Ok


@dataclass(frozen=True, slots=True)
class Refused:
    """The server refused the login with this ERR packet."""

    error: Err


Action = Send | StartTls | Disconnect | LoginReceived | PasswordReceived | LoggedIn | Refused
