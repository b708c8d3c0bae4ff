"""Authentication messages: the server's requests (``R``) and the client's responses (``p``).

Every ``R`` message starts with a 32-bit code naming the request; :func:`decode_authentication`
dispatches on it. A ``p`` message means a password, a SASL initial response or a SASL
response depending on what the server asked, so each has its own ``decode``.
Passwords and SASL data never appear in a ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Self

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.codec import BytesLike, Reader, Writer

AUTH = b"R"
RESPONSE = b"p"


@dataclass(frozen=True, slots=True)
class _AuthRequest:
    """An authentication request with nothing after its code."""

    CODE: ClassVar[int] = -1

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().int32(self.CODE).typed(AUTH)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        """Parse what follows the code."""
        reader.finish()
        return cls()


@dataclass(frozen=True, slots=True)
class AuthenticationOk(_AuthRequest):
    """Authentication succeeded."""

    CODE: ClassVar[int] = 0


@dataclass(frozen=True, slots=True)
class AuthenticationKerberosV5(_AuthRequest):
    """Kerberos V5 (no longer supported by PostgreSQL)."""

    CODE: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class AuthenticationCleartextPassword(_AuthRequest):
    """Send the password in a PasswordMessage."""

    CODE: ClassVar[int] = 3


@dataclass(frozen=True, slots=True)
class AuthenticationGSS(_AuthRequest):
    """Start GSSAPI authentication."""

    CODE: ClassVar[int] = 7


@dataclass(frozen=True, slots=True)
class AuthenticationSSPI(_AuthRequest):
    """Start SSPI authentication."""

    CODE: ClassVar[int] = 9


@dataclass(frozen=True, slots=True)
class AuthenticationMD5Password:
    """Send ``md5(md5(password + user) + salt)`` in a PasswordMessage."""

    CODE: ClassVar[int] = 5
    salt: bytes

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().int32(self.CODE).raw(self.salt).typed(AUTH)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        """Parse what follows the code."""
        salt = reader.raw(4)
        reader.finish()
        return cls(salt)


@dataclass(frozen=True, slots=True)
class _AuthData:
    """An authentication request carrying mechanism data."""

    CODE: ClassVar[int] = -1
    data: bytes = field(repr=False)

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().int32(self.CODE).raw(self.data).typed(AUTH)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        """Parse what follows the code."""
        return cls(reader.rest())


@dataclass(frozen=True, slots=True)
class AuthenticationGSSContinue(_AuthData):
    """More GSSAPI or SSPI data."""

    CODE: ClassVar[int] = 8


@dataclass(frozen=True, slots=True)
class AuthenticationSASLContinue(_AuthData):
    """A SASL challenge (the SCRAM server-first message)."""

    CODE: ClassVar[int] = 11


@dataclass(frozen=True, slots=True)
class AuthenticationSASLFinal(_AuthData):
    """The SASL outcome (the SCRAM server-final message)."""

    CODE: ClassVar[int] = 12


@dataclass(frozen=True, slots=True)
class AuthenticationSASL:
    """Start SASL authentication with one of ``mechanisms``."""

    CODE: ClassVar[int] = 10
    mechanisms: tuple[str, ...]

    def encode(self) -> bytes:
        """The message bytes."""
        writer = Writer().int32(self.CODE)
        for name in self.mechanisms:
            writer.cstring(name)
        return writer.byte(0).typed(AUTH)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        """Parse what follows the code."""
        names: list[str] = []
        while name := reader.cstring():
            names.append(name)
        reader.finish()
        return cls(tuple(names))


AuthenticationRequest = (
    AuthenticationOk
    | AuthenticationKerberosV5
    | AuthenticationCleartextPassword
    | AuthenticationMD5Password
    | AuthenticationGSS
    | AuthenticationGSSContinue
    | AuthenticationSSPI
    | AuthenticationSASL
    | AuthenticationSASLContinue
    | AuthenticationSASLFinal
)

_REQUESTS: dict[int, Callable[[Reader], AuthenticationRequest]] = {
    cls.CODE: cls.decode
    for cls in (
        AuthenticationOk,
        AuthenticationKerberosV5,
        AuthenticationCleartextPassword,
        AuthenticationMD5Password,
        AuthenticationGSS,
        AuthenticationGSSContinue,
        AuthenticationSSPI,
        AuthenticationSASL,
        AuthenticationSASLContinue,
        AuthenticationSASLFinal,
    )
}


def decode_authentication(payload: BytesLike) -> AuthenticationRequest:
    """Decode the body of an ``R`` message by its request code."""
    reader = Reader(payload, "Authentication")
    code = reader.int32()
    decoder = _REQUESTS.get(code)
    if decoder is None:
        raise ProtocolError(f"unknown authentication request code {code}")
    return decoder(reader)


@dataclass(frozen=True, slots=True)
class PasswordMessage:
    """A password (for sqlgate's clients: the identity token)."""

    TYPE: ClassVar[bytes] = RESPONSE
    password: str = field(repr=False)

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().cstring(self.password).typed(RESPONSE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "PasswordMessage")
        password = reader.cstring()
        reader.finish()
        return cls(password)


@dataclass(frozen=True, slots=True)
class SASLInitialResponse:
    """The chosen SASL mechanism and its first message (None: no initial response)."""

    TYPE: ClassVar[bytes] = RESPONSE
    mechanism: str
    data: bytes | None = field(repr=False)

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().cstring(self.mechanism).counted(self.data).typed(RESPONSE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, "SASLInitialResponse")
        mechanism, data = reader.cstring(), reader.counted()
        reader.finish()
        return cls(mechanism, data)


@dataclass(frozen=True, slots=True)
class SASLResponse:
    """A later SASL message (the SCRAM client-final message); also used for GSSAPI data."""

    TYPE: ClassVar[bytes] = RESPONSE
    data: bytes = field(repr=False)

    def encode(self) -> bytes:
        """The message bytes."""
        return Writer().raw(self.data).typed(RESPONSE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        return cls(bytes(payload))
