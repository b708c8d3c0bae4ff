"""AWS IAM identity against moto's STS server: presigned GetCallerIdentity requests as tokens."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from sqlgate.cli import app
from sqlgate.config import AwsIamConfig, Settings, load_settings
from sqlgate.errors import TokenRejected
from sqlgate.identity.authenticator import Authenticator
from sqlgate.identity.aws import check_signed_request, decode_aws_token, parse_caller_identity, principal_from_arn
from sqlgate.identity.awstoken import make_aws_token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sts_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def session(endpoint, *, role: str | None = None) -> boto3.Session:
    base = boto3.Session(aws_access_key_id="AKIAEXAMPLEUSER00001", aws_secret_access_key="x", region_name="us-east-1")
    if role is None:
        return base
    sts = base.client("sts", endpoint_url=endpoint)
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::123456789012:role/{role}", RoleSessionName="alice")[
        "Credentials"
    ]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name="us-east-1",
    )


def aws_settings(endpoint, data_dir, **aws):
    aws = {"enabled": True, "sts_endpoint": endpoint, "server_id": "gw-prod", **aws}
    return Settings(data_dir=data_dir, identity={"aws": aws})


@pytest.fixture
async def authenticate(sts_endpoint, tmp_path):
    made = []

    async def run(token, **aws):
        authenticator = Authenticator.from_settings(aws_settings(sts_endpoint, tmp_path, **aws))
        made.append(authenticator)
        return await authenticator.authenticate(token, "10.0.0.5")

    yield run
    for authenticator in made:
        await authenticator.aclose()


async def test_assumed_role_maps_to_its_role(sts_endpoint, authenticate):
    token = make_aws_token(session(sts_endpoint, role="deployer"), "gw-prod", sts_endpoint)
    principal = await authenticate(token)
    assert principal.subject == "arn:aws:iam::123456789012:role/deployer"
    assert (principal.issuer, principal.method, principal.name) == ("aws:sts", "aws", "alice")
    assert principal.claims["session_name"] == "alice"
    assert principal.claims["arn"].startswith("arn:aws:sts::123456789012:assumed-role/deployer/alice")
    assert set(principal.groups) == {"aws:account:123456789012", "aws:role:deployer"}
    assert principal.source == "10.0.0.5"


async def test_iam_user(sts_endpoint, authenticate):
    principal = await authenticate(make_aws_token(session(sts_endpoint), "gw-prod", sts_endpoint))
    assert principal.subject.endswith("::123456789012:user/moto")  # moto's answer for plain keys
    assert principal.name == "moto"
    assert principal.groups == ("aws:account:123456789012",)


async def test_token_for_another_server_is_refused(sts_endpoint, authenticate):
    token = make_aws_token(session(sts_endpoint), "gw-staging", sts_endpoint)
    with pytest.raises(TokenRejected, match="another server"):
        await authenticate(token)


async def test_account_not_allowed(sts_endpoint, authenticate):
    token = make_aws_token(session(sts_endpoint), "gw-prod", sts_endpoint)
    with pytest.raises(TokenRejected, match="account 123456789012 is not accepted"):
        await authenticate(token, allowed_accounts=["999999999999"])


async def test_never_sent_to_a_url_from_the_token(sts_endpoint, authenticate):
    """A token signed for another endpoint is refused before any request leaves the gateway."""
    token = make_aws_token(session(sts_endpoint), "gw-prod", "https://attacker.example.com")
    with pytest.raises(TokenRejected, match="another STS endpoint"):
        await authenticate(token)


def tamper(token: str, change) -> str:
    document = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    change(document)
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(method="GET"), "must be a POST"),
        (lambda d: d.update(body="Action=AssumeRole&Version=2011-06-15"), "not exactly sts:GetCallerIdentity"),
        (lambda d: d.update(body="Action=GetCallerIdentity&Version=2011-06-15&x=1"), "not exactly"),
        (
            lambda d: d["headers"].pop("X-Sqlgate-Server-Id", None) or d["headers"].pop("x-sqlgate-server-id"),
            "another server",
        ),
        (lambda d: d["headers"].update(Authorization="Basic Zm9vOmJhcg=="), "not signed with SigV4"),
        (
            lambda d: d["headers"].update(
                Authorization=d["headers"]["Authorization"].replace(";x-sqlgate-server-id", "")
            ),
            "not signed",
        ),
        (lambda d: d["headers"].update({"X-Amz-Date": "20200101T000000Z"}), "older than 15 minutes"),
        (lambda d: d["headers"].update({"X-Amz-Date": "yesterday"}), "no valid X-Amz-Date"),
        (lambda d: d.update(headers=[]), "method, url, headers and body"),
    ],
)
async def test_tampered_requests_are_refused(sts_endpoint, authenticate, change, reason):
    token = tamper(make_aws_token(session(sts_endpoint), "gw-prod", sts_endpoint), change)
    with pytest.raises(TokenRejected, match=reason):
        await authenticate(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        "bm90IGpzb24",
        base64.urlsafe_b64encode(b"[1]").decode(),
        base64.urlsafe_b64encode(b"[" * 9000).decode(),
        "x" * 20_000,
        "\udc80abc",
    ],
)
def test_garbage_tokens(token):
    with pytest.raises(TokenRejected):
        decode_aws_token(token)


def test_server_id_header_must_be_signed_even_if_present():
    token = make_aws_token(session("http://sts"), "gw-prod", "http://sts")
    request = decode_aws_token(token)
    request.headers["authorization"] = request.headers["authorization"].replace(";x-sqlgate-server-id", "")
    config = AwsIamConfig(enabled=True, sts_endpoint="http://sts", server_id="gw-prod")
    with pytest.raises(TokenRejected, match="not signed"):
        check_signed_request(request, config, datetime.now(UTC))


async def test_unreachable_sts_fails_closed(sts_endpoint, tmp_path):
    """No answer from the configured STS endpoint is a rejection, never a pass."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    authenticator = Authenticator.from_settings(aws_settings(endpoint, tmp_path))
    with pytest.raises(TokenRejected, match="cannot reach STS"):
        await authenticator.authenticate(make_aws_token(session(sts_endpoint), "gw-prod", endpoint), None)
    await authenticator.aclose()


@pytest.mark.parametrize(
    ("arn", "subject", "name"),
    [
        ("arn:aws:sts::111122223333:assumed-role/app/i-0abc", "arn:aws:iam::111122223333:role/app", "i-0abc"),
        ("arn:aws-cn:sts::111122223333:assumed-role/r/s", "arn:aws-cn:iam::111122223333:role/r", "s"),
        ("arn:aws:iam::111122223333:user/team/bob", "arn:aws:iam::111122223333:user/team/bob", "bob"),
        ("arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:root", "root"),
        ("arn:aws:sts::111122223333:federated-user/carol", "arn:aws:sts::111122223333:federated-user/carol", "carol"),
    ],
)
def test_arn_mapping(arn, subject, name):
    principal = principal_from_arn(arn, "AIDA", datetime.now(UTC) + timedelta(minutes=15))
    assert (principal.subject, principal.name) == (subject, name)


@pytest.mark.parametrize("document", [b"<not xml", b"<GetCallerIdentityResponse/>", b"<a><Arn>x</Arn></a>"])
def test_bad_sts_answers(document):
    with pytest.raises(TokenRejected):
        parse_caller_identity(document)


def test_unknown_arn_shape():
    with pytest.raises(TokenRejected, match="does not understand"):
        principal_from_arn("arn:aws:s3:::bucket", "", datetime.now(UTC))


async def test_plain_jwt_still_needs_an_issuer(sts_endpoint, authenticate):
    with pytest.raises(TokenRejected, match="not trusted"):
        await authenticate("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=400), st.binary(max_size=400).map(lambda b: base64.urlsafe_b64encode(b).decode())))
def test_arbitrary_aws_tokens_only_raise_token_rejected(text):
    """Fuzz the AWS token decoder and request checks: nothing but TokenRejected escapes."""
    config = AwsIamConfig(enabled=True, sts_endpoint="http://sts", server_id="gw")
    with pytest.raises(TokenRejected):
        check_signed_request(decode_aws_token(text), config, datetime.now(UTC))


def test_cli_token_aws(sts_endpoint, tmp_path, monkeypatch):
    """`sqlgate token --aws` signs with the caller's credentials for the configured gateway."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEUSER00002")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    config = tmp_path / "sqlgate.yaml"
    config.write_text(
        f"identity:\n  aws:\n    enabled: true\n    sts_endpoint: {sts_endpoint}\n    server_id: gw-prod\n"
    )
    result = CliRunner().invoke(app, ["token", "--aws", "-c", str(config)])
    assert result.exit_code == 0, result.output
    request = decode_aws_token(result.stdout.strip())
    check_signed_request(
        request, AwsIamConfig(enabled=True, sts_endpoint=sts_endpoint, server_id="gw-prod"), datetime.now(UTC)
    )


def test_cli_token_aws_is_for_this_gateway_only(sts_endpoint, tmp_path, monkeypatch):
    """Without a server_id, `sqlgate token --aws` signs for the gateway's own id; another gateway refuses it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEUSER00003")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")

    def gateway_config(name):
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"data_dir: {name}\nidentity:\n  aws:\n    enabled: true\n    sts_endpoint: {sts_endpoint}\n")
        return path

    async def authenticate(config, token):
        authenticator = Authenticator.from_settings(load_settings(config))  # each gateway's first start
        try:
            return await authenticator.authenticate(token, None)
        finally:
            await authenticator.aclose()

    async def first_start(config):
        await Authenticator.from_settings(load_settings(config)).aclose()

    staging, production = gateway_config("staging"), gateway_config("production")
    asyncio.run(first_start(staging))  # writes staging's id into its data_dir
    result = CliRunner().invoke(app, ["token", "--aws", "-c", str(staging)])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert asyncio.run(authenticate(staging, token)).subject.endswith(":user/moto")
    with pytest.raises(TokenRejected, match="another server"):
        asyncio.run(authenticate(production, token))


def test_cli_token_aws_without_a_known_gateway_id_says_what_to_set(sts_endpoint, tmp_path):
    config = tmp_path / "client.yaml"
    config.write_text(f"data_dir: data\nidentity:\n  aws:\n    enabled: true\n    sts_endpoint: {sts_endpoint}\n")
    result = CliRunner().invoke(app, ["token", "--aws", "-c", str(config)])
    assert result.exit_code == 2
    assert "public_url" in result.output
    assert not (tmp_path / "data").exists()  # a client never invents a gateway id
