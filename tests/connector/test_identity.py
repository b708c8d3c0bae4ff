"""Identity sources: files re-read on rotation, variables, commands, the GCP metadata server, the dev issuer."""

from __future__ import annotations

import base64
import json
import socket
import sys
import time
from collections.abc import Iterator
from typing import Annotated

import pytest
from fastapi import FastAPI, Form, Header, Response

from sqlgate.connector import (
    CommandToken,
    DevIssuerToken,
    EnvToken,
    GcpMetadataToken,
    JwksVerifier,
    TokenFile,
    TokenUnavailable,
)
from sqlgate.connector.identity import jwt_expiry
from sqlgate.connector.testing import ServerThread

METADATA_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"


def fake_jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


async def test_token_file_is_reread_after_rotation(tmp_path):
    """A projected token rewritten by the kubelet is picked up at the next call."""
    path = tmp_path / "token"
    path.write_text("first-token\n")
    source = TokenFile(path)
    assert (await source.token()).value == "first-token"
    path.write_text("second-token")
    assert (await source.token()).value == "second-token"


@pytest.mark.parametrize(("content", "message"), [(None, "no token file"), ("  \n", "is empty"), ("a b", "one word")])
async def test_token_file_problems_are_clear(tmp_path, content, message):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TokenUnavailable, match=message) as info:
        await TokenFile(path).token()
    assert info.value.cause == "token"


async def test_env_token(monkeypatch):
    monkeypatch.setenv("APP_TOKEN", "env-token")
    assert (await EnvToken("APP_TOKEN").token()).value == "env-token"
    monkeypatch.delenv("APP_TOKEN")
    with pytest.raises(TokenUnavailable, match="APP_TOKEN is not set"):
        await EnvToken("APP_TOKEN").token()


async def test_command_token_plain_and_json():
    """A command may print the token alone or as JSON; the JWT's exp becomes expires_at."""
    exp = int(time.time()) + 600
    jwt = fake_jwt({"sub": "app", "exp": exp})
    plain = await CommandToken([sys.executable, "-c", f"print({jwt!r})"]).token()
    assert plain.value == jwt
    assert plain.expires_at is not None
    assert int(plain.expires_at.timestamp()) == exp
    as_json = await CommandToken([sys.executable, "-c", 'print(\'{"access_token": "tok"}\')']).token()
    assert as_json.value == "tok"


async def test_command_token_failures_name_the_command():
    with pytest.raises(TokenUnavailable, match="exit code 3: not logged in"):
        await CommandToken([sys.executable, "-c", "import sys; sys.stderr.write('not logged in'); sys.exit(3)"]).token()
    with pytest.raises(TokenUnavailable, match="cannot run"):
        await CommandToken(["/nonexistent/sqlgate"]).token()
    with pytest.raises(TokenUnavailable, match=r"within 0\.2 s"):
        await CommandToken([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2).token()


def test_token_repr_hides_the_value():
    assert "secret" not in repr(TokenFile("/x")) + repr(EnvToken("X"))
    from sqlgate.connector import Token  # noqa: PLC0415

    assert "secret-value" not in repr(Token("secret-value"))


def test_jwt_expiry_reads_only_well_formed_exp():
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry(fake_jwt({"exp": "soon"})) is None
    assert jwt_expiry("a.!!!.c") is None


@pytest.fixture
def metadata_server() -> Iterator[str]:
    """A stand-in for the GCP metadata server's identity endpoint."""
    app = FastAPI()

    @app.get(METADATA_PATH)
    def identity(
        audience: str, response: Response, metadata_flavor: Annotated[str | None, Header()] = None
    ) -> Response:
        if metadata_flavor != "Google":
            return Response("missing Metadata-Flavor", status_code=403)
        return Response(fake_jwt({"aud": audience, "exp": int(time.time()) + 3600}), media_type="text/plain")

    with ServerThread(app) as server:
        yield server.url


async def test_gcp_metadata_token(metadata_server):
    """The source asks for the audience with Metadata-Flavor: Google."""
    token = await GcpMetadataToken("https://gw.example", endpoint=metadata_server + METADATA_PATH).token()
    payload = json.loads(base64.urlsafe_b64decode(token.value.split(".")[1] + "=="))
    assert payload["aud"] == "https://gw.example"
    assert token.expires_at is not None


async def test_gcp_metadata_errors(metadata_server):
    with pytest.raises(TokenUnavailable, match="answered 404"):
        await GcpMetadataToken("aud", endpoint=metadata_server + "/nowhere").token()
    with pytest.raises(TokenUnavailable, match="unreachable"):
        await GcpMetadataToken("aud", endpoint="http://127.0.0.1:9/identity", timeout=1).token()


@pytest.fixture
def dev_issuer() -> Iterator[str]:
    """A stand-in for the dev issuer's token endpoint (form fields user, groups, ttl)."""
    app = FastAPI()

    @app.post("/token")
    def token(
        user: Annotated[str, Form()], groups: Annotated[str, Form()] = "", ttl: Annotated[str, Form()] = "15m"
    ) -> dict[str, str]:
        return {"access_token": f"{user}|{groups}|{ttl}", "token_type": "Bearer"}

    with ServerThread(app) as server:
        yield server.url


async def test_dev_issuer_endpoint(dev_issuer):
    token = await DevIssuerToken("svc-orders", groups=["apps", "orders"], ttl="10m", issuer=dev_issuer + "/").token()
    assert token.value == "svc-orders|apps,orders|10m"


async def test_dev_issuer_command(tmp_path):
    """Without an issuer URL, `sqlgate token --user X --json` is run (here a stand-in script)."""
    script = tmp_path / "fake-sqlgate"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\nprint(json.dumps({{'access_token': '|'.join(sys.argv[1:])}}))\n"
    )
    script.chmod(0o755)
    token = await DevIssuerToken("alice", groups=["dba", "oncall"], command=[str(script), "token"]).token()
    assert token.value == "token|--user|alice|--json|--group|dba|--group|oncall"


async def test_dev_issuer_down():
    with pytest.raises(TokenUnavailable, match="sqlgate up"):
        await DevIssuerToken("alice", issuer="http://127.0.0.1:9", timeout=1).token()


@pytest.fixture
def real_dev_issuer(tmp_path) -> Iterator[str]:
    """Sqlgate's own dev issuer routes (sqlgate.identity), on a free port; yields the issuer URL."""
    from sqlgate.identity.devissuer import DevIssuer  # noqa: PLC0415 - the gateway side, for this test only
    from sqlgate.identity.devissuer_http import dev_issuer_router  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/dev-issuer"
    app = FastAPI()
    app.include_router(dev_issuer_router(DevIssuer.load(tmp_path, url)))
    with ServerThread(app, port=port):
        yield url


async def test_dev_issuer_token_verifies_against_the_real_dev_issuer(real_dev_issuer, tmp_path):
    """The token DevIssuerToken gets from sqlgate's dev issuer verifies with the issuer's own JWKS."""
    token = await DevIssuerToken("svc-orders", groups=["apps", "dba"], ttl="5m", issuer=real_dev_issuer).token()
    from sqlgate.identity.devissuer import DevIssuer  # noqa: PLC0415 - the gateway side, for this test only

    audience = DevIssuer.load(tmp_path, real_dev_issuer).audience  # the gateway's id, generated into its data_dir
    verifier = JwksVerifier(f"{real_dev_issuer}/jwks", issuer=real_dev_issuer, audience=audience)
    claims = await verifier(token.value)
    assert (claims["sub"], claims["groups"]) == ("svc-orders", ["apps", "dba"])
    assert token.expires_at is not None


async def test_dev_issuer_token_from_the_real_cli(tmp_path):
    """Without an issuer URL, DevIssuerToken runs `sqlgate token --user U --group G --ttl T --json`."""
    from joserfc import jwt  # noqa: PLC0415

    from sqlgate.identity.devissuer import DevIssuer  # noqa: PLC0415 - the gateway side, for this test only

    config = tmp_path / "sqlgate.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nidentity:\n  dev_issuer: true\n")
    command = [sys.executable, "-m", "sqlgate", "token", "-c", str(config)]
    token = await DevIssuerToken("svc-orders", groups=["dba"], ttl="5m", command=command).token()
    key = DevIssuer.load(tmp_path / "data", "http://unused").public_key()
    claims = jwt.decode(token.value, key, algorithms=["ES256"]).claims
    assert (claims["sub"], claims["groups"]) == ("svc-orders", ["dba"])
    assert token.expires_at is not None
