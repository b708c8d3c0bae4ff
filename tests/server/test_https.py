"""The HTTP listener over TLS, end to end: HTTPS and plain HTTP on one port, plain HTTP only from loopback.

The gateway serves the certificate of ``proxy.tls_cert_file`` (named relative to its
settings file) or the self-signed one in data_dir/tls; clients here trust a CA made in
the test. Non-loopback clients are this machine's own address (``hostname -I``).
"""

from __future__ import annotations

import secrets
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway import DEMO_POLICY, RunningGateway
from tests.tlskit import Authority, TlsGateway, issue, make_ca, own_address, with_certificate

OWN_ADDRESS = own_address()
needs_own_address = pytest.mark.skipif(
    OWN_ADDRESS is None, reason="needs a non-loopback IPv4 address on this machine (hostname -I lists none)"
)


def trusting(cafile: Path) -> ssl.SSLContext:
    """A client context that trusts only ``cafile``."""
    return ssl.create_default_context(cafile=str(cafile))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return make_ca(tmp_path / "ca")


def start(pg_server, pg_database, tmp_path: Path, authority: Authority, **options: str | tuple[str, str]) -> TlsGateway:
    """A gateway with a certificate from ``authority`` for loopback and this machine's own address."""
    hosts = ("127.0.0.1", "localhost", *([OWN_ADDRESS] if OWN_ADDRESS else []))
    cert, key = issue(authority, tmp_path / "certs", hosts)
    return TlsGateway(
        pg_server,
        tmp_path,
        DEMO_POLICY,
        pg_database,
        secrets.token_hex(3),
        extra=with_certificate(cert, key, tmp_path),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def tls_gateway(pg_server, pg_database, tmp_path, authority) -> Iterator[TlsGateway]:
    running = start(pg_server, pg_database, tmp_path, authority)
    yield running
    running.stop()


def test_https_with_the_configured_certificate_and_plain_http_from_loopback_on_one_port(tls_gateway, authority):
    port = tls_gateway.gateway.http_port
    token = tls_gateway.token("alice", ("analysts",))
    with httpx.Client(verify=trusting(authority.cert_file), timeout=30) as client:
        for host in ("127.0.0.1", "localhost"):
            answer = client.post(
                f"https://{host}:{port}/v1/query", headers=bearer(token), json={"database": "demo", "sql": "SELECT 1"}
            )
            assert answer.status_code == 200, answer.text
        assert client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
    plain = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
    assert plain.status_code == 200


def test_a_client_trusting_another_ca_cannot_connect(tls_gateway, tmp_path):
    stranger = make_ca(tmp_path / "other-ca", "another CA")
    with (
        httpx.Client(verify=trusting(stranger.cert_file), timeout=30) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"https://127.0.0.1:{tls_gateway.gateway.http_port}/healthz")


def test_without_a_configured_certificate_https_uses_the_self_signed_one_in_data_dir(pg_server, pg_database, tmp_path):
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    try:
        self_signed = running.settings.data_dir / "tls" / "server.crt"
        with httpx.Client(verify=trusting(self_signed), timeout=30) as client:
            assert client.get(f"https://127.0.0.1:{running.gateway.http_port}/healthz").status_code == 200
    finally:
        running.stop()


def test_require_tls_refuses_plain_http_from_loopback_too(pg_server, pg_database, tmp_path, authority):
    running = start(pg_server, pg_database, tmp_path, authority, api="require_tls: true")
    try:
        port = running.gateway.http_port
        refused = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
        assert refused.status_code == 403
        assert refused.json()["type"].endswith("/tls-required")
        with httpx.Client(verify=trusting(authority.cert_file), timeout=30) as client:
            assert client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        running.stop()


def orders(running: TlsGateway) -> str:
    return running.pg_server.psql("SELECT count(*) FROM orders", running.database).strip()


@needs_own_address
def test_plain_http_from_another_address_is_refused_and_changes_nothing(pg_server, pg_database, tmp_path, authority):
    running = start(pg_server, pg_database, tmp_path, authority, listen=("127.0.0.1:0", "0.0.0.0:0"))
    try:
        port, before = running.gateway.http_port, orders(running)
        writer = bearer(running.token("wanda", ("writers",)))
        delete = {"database": "demo", "sql": "DELETE FROM orders"}
        refused = httpx.post(f"http://{OWN_ADDRESS}:{port}/v1/query", headers=writer, json=delete, timeout=30)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["connection"] == "close"
        problem = refused.json()
        assert problem["type"] == "https://sqlgate.dev/problems/tls-required"
        assert "https://" in problem["detail"]
        assert "unencrypted" in problem["detail"]  # it carried a token: the client is told to discard it
        assert orders(running) == before != "0"
        count = {"database": "demo", "sql": "SELECT count(*) AS n FROM orders"}
        with httpx.Client(verify=trusting(authority.cert_file), timeout=30) as client:
            served = client.post(f"https://{OWN_ADDRESS}:{port}/v1/query", headers=writer, json=count)
        assert served.status_code == 200, served.text
        assert str(before) in served.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
    finally:
        running.stop()


@needs_own_address
def test_allow_plaintext_admits_plain_http_from_another_address(pg_server, pg_database, tmp_path, authority):
    running = start(
        pg_server, pg_database, tmp_path, authority, listen=("127.0.0.1:0", "0.0.0.0:0"), api="allow_plaintext: true"
    )
    try:
        answer = httpx.get(f"http://{OWN_ADDRESS}:{running.gateway.http_port}/healthz", timeout=30)
        assert answer.status_code == 200
    finally:
        running.stop()


def test_a_broken_handshake_or_a_silent_close_costs_one_connection_only(tls_gateway, authority):
    port = tls_gateway.gateway.http_port
    for opening in (b"\x16\x03\x01\x00\x05junk!", b""):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(opening)
            sock.shutdown(socket.SHUT_WR)
            assert not sock.recv(100).startswith(b"HTTP/")  # closed (at most a TLS alert), no HTTP answer
    with httpx.Client(verify=trusting(authority.cert_file), timeout=30) as client:
        assert client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
