"""The connector's public surface is deliberate, and the library stays light and gateway-free."""

from __future__ import annotations

import json
import subprocess
import sys

import sqlgate.connector
import sqlgate.connector.fastapi
import sqlgate.connector.testing

PUBLIC = {
    "CloudSqlIamCredentials", "CommandToken", "ConnectorError", "Credential", "CredentialManager", "CredentialPool",
    "CredentialSource", "DatabaseUnavailable", "DevIssuerToken", "EndUser", "EndUserRejected", "EndUsers", "EnvToken",
    "GatewayCredentials", "GatewayDenied", "GatewayUnavailable", "GcpMetadataToken", "IdentitySource", "JwksVerifier",
    "JwtVerifier", "RetryPolicy", "StartupError", "Token", "TokenAsPassword", "TokenFile", "TokenRefused",
    "TokenUnavailable", "create_async_engine", "create_pool", "dispose_engine",
}  # fmt: skip


def test_exported_members():
    """Every name in __all__ exists and has a docstring; nothing public is left out by accident."""
    assert set(sqlgate.connector.__all__) == PUBLIC
    for module in (sqlgate.connector, sqlgate.connector.fastapi, sqlgate.connector.testing):
        for name in module.__all__:
            member = getattr(module, name)
            assert getattr(member, "__doc__", None), f"{module.__name__}.{name} has no docstring"


def test_imports_stay_light_and_gateway_free():
    """Importing the library loads neither the gateway nor SQLAlchemy, FastAPI or the Google connector."""
    code = (
        "import sys, json, sqlgate.connector;"
        "print(json.dumps(sorted({m.split('.')[0] if not m.startswith('sqlgate') else '.'.join(m.split('.')[:2])"
        " for m in sys.modules})))"
    )
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout))
    assert not loaded & {"sqlgate.proxy", "sqlgate.api", "sqlgate.broker", "sqlgate.server", "sqlgate.identity"}
    assert not loaded & {"sqlalchemy", "fastapi", "starlette", "google", "uvicorn"}
    code_fastapi = code.replace("sqlgate.connector;", "sqlgate.connector.fastapi, sqlgate.connector.testing;")
    loaded = set(
        json.loads(subprocess.run([sys.executable, "-c", code_fastapi], capture_output=True, check=True).stdout)
    )
    assert not loaded & {"sqlgate.proxy", "sqlgate.api", "sqlgate.broker", "sqlgate.server"}
