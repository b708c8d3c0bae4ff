"""SCRAM-SHA-256 client: the RFC 7677 vector, channel binding, and refusals of a lying or broken server."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sqlgate.errors import ProtocolError
from sqlgate.pgwire import scram
from sqlgate.pgwire.scram import MECHANISM, MECHANISM_PLUS, ScramClient, ScramError

# RFC 7677 section 3.
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_client(**kwargs):
    return ScramClient("user", "pencil", nonce=CLIENT_NONCE, **kwargs)


def test_rfc7677_test_vector():
    client = rfc_client()
    assert client.mechanism == MECHANISM
    assert client.first_message() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert client.handle_server_first(SERVER_FIRST) == CLIENT_FINAL
    client.verify_server_final(SERVER_FINAL)
    assert client.done


def test_wrong_server_signature_is_refused():
    """A server that does not know the password cannot finish the login."""
    client = rfc_client()
    client.handle_server_first(SERVER_FIRST)
    forged = b"v=" + base64.b64encode(bytes(32))
    with pytest.raises(ScramError, match="does not know the password"):
        client.verify_server_final(forged)
    assert not client.done


def test_server_error_attribute_is_reported():
    client = rfc_client()
    client.handle_server_first(SERVER_FIRST)
    with pytest.raises(ScramError, match="invalid-proof"):
        client.verify_server_final(b"e=invalid-proof")


@pytest.mark.parametrize(
    ("server_first", "reason"),
    [
        (b"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend"),
        (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend"),
        (b"m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=AA==,i=1", "must start with"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=***,i=4096", "base64"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=,i=4096", "salt is empty"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=AA==,i=0", "outside"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=AA==,i=99999999999", "outside"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=AA==,i=-1", "not a number"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=AA==", "must start with"),
        (b"\xff", "not ASCII"),
        (b"garbage", "malformed"),
    ],
)
def test_malformed_server_first_is_a_protocol_error(server_first, reason):
    with pytest.raises(ProtocolError, match=reason):
        rfc_client().handle_server_first(server_first)


def test_messages_out_of_order_are_refused():
    client = rfc_client()
    with pytest.raises(ProtocolError, match="out of order"):
        client.verify_server_final(SERVER_FINAL)
    client.handle_server_first(SERVER_FIRST)
    with pytest.raises(ProtocolError, match="twice"):
        client.handle_server_first(SERVER_FIRST)


def test_password_stays_out_of_repr():
    assert "pencil" not in repr(rfc_client())


def test_no_supported_mechanism():
    with pytest.raises(ScramError, match="no SASL mechanism"):
        ScramClient("u", "p", mechanisms=("SCRAM-SHA-1",))


def self_signed(algorithm):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "db")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, algorithm)
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_channel_binding_when_the_server_offers_plus():
    """With the server certificate and -PLUS offered, the exchange is bound to the TLS certificate."""
    der = self_signed(hashes.SHA384())
    client = rfc_client(server_certificate=der, mechanisms=(MECHANISM, MECHANISM_PLUS))
    assert client.mechanism == MECHANISM_PLUS
    assert client.first_message().startswith(b"p=tls-server-end-point,,n=user,")
    final = client.handle_server_first(SERVER_FIRST)
    binding = base64.b64decode(final.split(b",")[0][2:])
    digest = hashes.Hash(hashes.SHA384())
    digest.update(der)
    assert binding == b"p=tls-server-end-point,," + digest.finalize()


def test_client_that_could_bind_says_so_when_plus_is_not_offered():
    """'y' tells a server whose -PLUS offer was stripped that a downgrade happened."""
    client = rfc_client(server_certificate=self_signed(hashes.SHA256()), mechanisms=(MECHANISM,))
    assert client.mechanism == MECHANISM
    assert client.first_message().startswith(b"y,,")


def test_end_point_hash_uses_the_signature_hash():
    """A SHA-256-signed certificate binds with SHA-256 (SHA-1 signing cannot be produced to test the upgrade)."""
    der = self_signed(hashes.SHA256())
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    assert scram.tls_server_end_point(der) == digest.finalize()


def test_verifier_primitives_match_postgres():
    """StoredKey and ServerKey as PostgreSQL stores them for 'pencil' (RFC 7677 salt, 4096 rounds)."""
    salted = scram.salted_password("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
    assert (
        base64.b64encode(scram.stored_key(scram.client_key(salted))) == b"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    )
    assert base64.b64encode(scram.server_key(salted)) == b"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("pencil", b"pencil"),
        ("tab\there", b"tab\there"),
        ("I\u00adX", b"IX"),
        ("\u2168", b"IX"),
        ("a\u00a0b", b"a b"),
        ("\u0007bell\u00e9", "\u0007bell\u00e9".encode()),
    ],
)
def test_saslprep_as_postgres_does_it(password, prepared):
    """ASCII as is; mapping and NFKC for the rest; raw bytes when SASLprep refuses (here: a control char)."""
    assert scram.saslprep(password) == prepared
