"""AWS IAM identity: a presigned ``sts:GetCallerIdentity`` request as the token.

The scheme of Vault's aws auth method: the caller signs (but does not send) a
GetCallerIdentity request and hands it over as base64url JSON ``{"method",
"url", "headers", "body"}``. sqlgate checks the request is exactly that call,
signed for the configured STS endpoint and for *this* gateway (the signed
``X-Sqlgate-Server-Id`` header: ``identity.aws.server_id``, by default this
gateway's id, see :mod:`sqlgate.identity.deployment`), sends it to the configured ``sts_endpoint``
(never to a URL from the token), and maps the ARN STS answers with.
Building a token: :func:`sqlgate.identity.awstoken.make_aws_token`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree as ET

import httpx

from sqlgate.config import AwsIamConfig
from sqlgate.errors import ConfigError, TokenRejected
from sqlgate.identity.jwt import check_size, show_untrusted
from sqlgate.identity.principal import Principal

AWS_ISSUER = "aws:sts"
SERVER_ID_HEADER = "x-sqlgate-server-id"
REQUEST_BODY = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
SIGNATURE_LIFETIME = timedelta(minutes=15)
CLOCK_SKEW = timedelta(minutes=5)
STS_TIMEOUT = 10.0

_SIGNED_HEADERS = re.compile(r"SignedHeaders=([a-z0-9;-]+)")
_ARN = re.compile(r"^arn:(aws[a-z-]*):(iam|sts)::(\d{12}):([a-z-]+)/?(.*)$")
_ACCOUNT = re.compile(r"\d{12}")
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The presigned request carried by an AWS token; header names are lower-case."""

    method: str
    url: str
    headers: dict[str, str]
    body: str

    def signed_headers(self) -> set[str]:
        """Names listed in the Authorization header's SignedHeaders."""
        match = _SIGNED_HEADERS.search(self.headers.get("authorization", ""))
        return set(match.group(1).split(";")) if match else set()


def decode_aws_token(token: str) -> SignedRequest:
    """Decode base64url JSON into a SignedRequest (TokenRejected when malformed)."""
    check_size(token)
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise TokenRejected("not an AWS token: expected base64url JSON") from None
    if not isinstance(data, dict):
        raise TokenRejected("not an AWS token: expected a JSON object")
    method, url, headers, body = (data.get(k) for k in ("method", "url", "headers", "body"))
    if not (isinstance(method, str) and isinstance(url, str) and isinstance(body, str) and isinstance(headers, dict)):
        raise TokenRejected("malformed AWS token: method, url, headers and body are required")
    flat: dict[str, str] = {}
    for name, value in headers.items():
        text = value[0] if isinstance(value, list) and len(value) == 1 else value
        if not isinstance(text, str) or "\r" in text or "\n" in text:
            raise TokenRejected("malformed AWS token: bad header value")
        flat[str(name).lower()] = text
    return SignedRequest(method.upper(), url, flat, body)


def check_signed_request(request: SignedRequest, config: AwsIamConfig, now: datetime) -> datetime:
    """Raise TokenRejected unless ``request`` is a GetCallerIdentity for this gateway; returns its expiry."""
    if request.method != "POST":
        raise TokenRejected("AWS token: the request must be a POST")
    if request.url.rstrip("/") != config.sts_endpoint.rstrip("/"):
        raise TokenRejected("AWS token: the request was signed for another STS endpoint")
    if dict(parse_qsl(request.body, keep_blank_values=True)) != REQUEST_BODY or request.body.count("&") != 1:
        raise TokenRejected("AWS token: the request is not exactly sts:GetCallerIdentity")
    if not request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 "):
        raise TokenRejected("AWS token: the request is not signed with SigV4")
    signed = request.signed_headers()
    if SERVER_ID_HEADER not in signed or "host" not in signed:
        raise TokenRejected("AWS token: the X-Sqlgate-Server-Id header is not signed")
    if config.server_id is None or request.headers.get(SERVER_ID_HEADER) != config.server_id:
        raise TokenRejected("AWS token: signed for another server (X-Sqlgate-Server-Id)")
    return _check_date(request.headers.get("x-amz-date", ""), now)


def _check_date(value: str, now: datetime) -> datetime:
    try:
        signed_at = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise TokenRejected("AWS token: no valid X-Amz-Date") from None
    if signed_at > now + CLOCK_SKEW:
        raise TokenRejected("AWS token: signed in the future")
    expires = signed_at + SIGNATURE_LIFETIME
    if now > expires:
        raise TokenRejected("AWS token: the signature is older than 15 minutes")
    return expires


def parse_caller_identity(document: bytes) -> tuple[str, str, str]:
    """(Arn, Account, UserId) from a GetCallerIdentity response."""
    try:
        root = ET.fromstring(document)  # noqa: S314 # only ever the configured STS endpoint's answer; expat >= 2.4.1 bounds entity expansion
    except ET.ParseError:
        raise TokenRejected("STS answered with malformed XML") from None
    values = [
        root.findtext(f".//{_STS_NS}{name}") or root.findtext(f".//{name}") for name in ("Arn", "Account", "UserId")
    ]
    arn, account, user_id = (v.strip() if v else "" for v in values)
    if not arn or not account:
        raise TokenRejected("STS answer lacks Arn or Account")
    if not _ACCOUNT.fullmatch(account):
        raise TokenRejected(f"STS answered with a malformed Account {show_untrusted(account)}")
    return arn, account, user_id


def principal_from_arn(arn: str, user_id: str, expires_at: datetime) -> Principal:
    """The principal for a caller ARN; an assumed role maps to its role, the session name kept in claims."""
    match = _ARN.match(arn)
    if match is None:
        raise TokenRejected("STS returned an ARN sqlgate does not understand")
    partition, _, account, kind, rest = match.groups()
    claims: dict[str, Any] = {"arn": arn, "account": account, "user_id": user_id, "type": kind}
    groups = [f"aws:account:{account}"]
    subject, name = arn, rest.rsplit("/", 1)[-1] or kind
    if kind == "assumed-role":
        role, _, session = rest.partition("/")
        subject = f"arn:{partition}:iam::{account}:role/{role}"
        claims |= {"role": role, "session_name": session}
        groups.append(f"aws:role:{role}")
        name = session or role
    return Principal(
        subject=subject,
        issuer=AWS_ISSUER,
        name=name,
        groups=tuple(groups),
        claims=MappingProxyType(claims),
        expires_at=expires_at,
        method="aws",
    )


class AwsVerifier:
    """Verifies AWS tokens by replaying them to the configured STS endpoint."""

    def __init__(self, config: AwsIamConfig, http: httpx.AsyncClient) -> None:
        if config.server_id is None:
            raise ConfigError("identity.aws.server_id is not resolved: this gateway's id is unknown")
        self.config = config
        self._http = http

    async def verify(self, token: str, now: datetime) -> Principal:
        """The principal STS vouches for, or TokenRejected."""
        request = decode_aws_token(token)
        expires_at = check_signed_request(request, self.config, now)
        arn, account, user_id = parse_caller_identity(await self._call_sts(request))
        if self.config.allowed_accounts and account not in self.config.allowed_accounts:
            raise TokenRejected(f"AWS account {account} is not accepted here")
        return principal_from_arn(arn, user_id, expires_at)

    async def _call_sts(self, request: SignedRequest) -> bytes:
        forward = {k: v for k, v in request.headers.items() if k in request.signed_headers() or k == "authorization"}
        forward.pop("host", None)
        try:
            response = await self._http.post(
                self.config.sts_endpoint, content=request.body.encode(), headers=forward, timeout=STS_TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise TokenRejected(f"cannot reach STS to verify the request ({type(exc).__name__})") from None
        if response.status_code != 200:
            code = re.search(r"<Code>([A-Za-z.]{1,64})</Code>", response.text)
            raise TokenRejected(
                f"STS refused the signed request (HTTP {response.status_code}{', ' + code.group(1) if code else ''})"
            )
        return response.content
