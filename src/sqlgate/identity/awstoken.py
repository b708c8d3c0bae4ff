"""Client side of AWS IAM identity: sign a GetCallerIdentity request for one gateway (needs botocore)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from sqlgate.errors import IdentityError
from sqlgate.identity.aws import REQUEST_BODY, SERVER_ID_HEADER


def make_aws_token(session: Any, server_id: str, endpoint: str, region: str = "us-east-1") -> str:
    """A token for a gateway whose ``identity.aws.server_id`` is ``server_id``.

    ``session`` is a ``boto3.Session`` or ``botocore.session.Session`` holding the caller's
    credentials; ``endpoint`` is the STS endpoint the gateway is configured with.
    """
    # botocore is needed only by clients that sign, so it is imported here.
    from botocore.auth import SigV4Auth  # type: ignore[import-untyped]  # noqa: PLC0415
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]  # noqa: PLC0415

    credentials = session.get_credentials()
    if credentials is None:
        raise IdentityError("no AWS credentials found (environment, profile or instance role)")
    body = urlencode(REQUEST_BODY)
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", SERVER_ID_HEADER: server_id}
    request = AWSRequest(method="POST", url=endpoint, data=body, headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), "sts", region).add_auth(request)
    prepared = request.prepare()
    document = {
        "method": "POST",
        "url": endpoint,
        "headers": dict(prepared.headers.items()),
        "body": body,
    }
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
