"""TLS towards a MySQL client, in memory: the client starts its handshake in the same bytes as its SSLRequest.

A MySQL client sends SSLRequest and its TLS ClientHello without waiting for an
answer, so both often arrive in one read; ``loop.start_tls`` cannot be handed bytes
already read. This layer runs the server side of TLS over memory buffers
(:class:`ssl.MemoryBIO`): ciphertext in, plaintext out, and the reverse.
"""

from __future__ import annotations

import ssl

from sqlgate.errors import ProtocolError

_READ = 256 * 1024


class TlsLayer:
    """The server side of one client's TLS session."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.established = False
        self.closed = False

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Ciphertext from the client -> (plaintext for the gateway, ciphertext to send back)."""
        self._incoming.write(data)
        plain: list[bytes] = []
        try:
            if not self.established:
                self._tls.do_handshake()
                self.established = True
            while chunk := self._tls.read(_READ):
                plain.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self.closed = True
        except ssl.SSLError as exc:
            raise ProtocolError(f"TLS with the client failed: {exc.reason or exc}") from exc
        return b"".join(plain), self._outgoing.read()

    def send(self, data: bytes) -> bytes:
        """Plaintext for the client -> ciphertext to write."""
        self._tls.write(data)
        return self._outgoing.read()
