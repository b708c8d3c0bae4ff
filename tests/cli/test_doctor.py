"""`sqlgate doctor` against the embedded PostgreSQL: what is wrong, how to fix it, and the exit code."""

from __future__ import annotations

import datetime as dt
import json
import secrets

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from sqlgate.cli import app

runner = CliRunner()


@pytest.fixture
def site(pg_server, pg_database, tmp_path, monkeypatch):
    """A settings file for one database whose admin has CREATEROLE and ADMIN OPTION on `read` only."""
    monkeypatch.delenv("SQLGATE_CONFIG", raising=False)
    suffix = secrets.token_hex(4)
    admin, read, write = f"adm_{suffix}", f"r_{suffix}", f"w_{suffix}"
    password = secrets.token_urlsafe(16)
    pg_server.psql(
        f"CREATE ROLE {read} NOLOGIN; CREATE ROLE {write} NOLOGIN;"
        f"CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD '{password}';"
        f"GRANT {read} TO {admin} WITH ADMIN OPTION;"
    )
    (tmp_path / "admin-secret").write_text(password)
    (tmp_path / "sqlgate.yaml").write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        "databases:\n"
        "  demo:\n"
        f"    host: {pg_server.host}\n    port: {pg_server.port}\n    dbname: {pg_database}\n"
        f"    admin_user: {admin}\n    admin_password_file: admin-secret\n"
        f"    roles: {{read: {read}, write: {write}}}\n"
    )
    monkeypatch.chdir(tmp_path)
    yield {"admin": admin, "read": read, "write": write, "path": tmp_path}
    pg_server.psql(f"DROP ROLE IF EXISTS {admin}; DROP ROLE IF EXISTS {read}; DROP ROLE IF EXISTS {write}")


def doctor_json():
    result = runner.invoke(app, ["doctor", "--json"])
    report = json.loads(result.output)
    return result.exit_code, report, {c["check"]: c for c in report["checks"]}


def test_a_missing_admin_option_fails_with_the_grant_that_fixes_it(site, pg_server):
    code, report, checks = doctor_json()
    assert code == 1
    assert report["ok"] is False
    database = checks["database demo"]
    assert database["status"] == "fail"
    assert f"{site['admin']} has no ADMIN OPTION on {site['write']} (write)" in database["message"]
    assert f'GRANT "{site["write"]}" TO "{site["admin"]}" WITH ADMIN OPTION;' in database["fix"]
    assert site["read"] + " (read)" not in database["message"]

    pg_server.psql(f"GRANT {site['write']} TO {site['admin']} WITH ADMIN OPTION")
    code, report, checks = doctor_json()
    assert checks["database demo"]["status"] == "ok", checks["database demo"]
    assert checks["settings"]["status"] == "ok"
    assert checks["state"]["status"] == "warn"  # no gateway has started here: nothing to migrate yet
    assert code == 0, report


def test_no_createrole_and_a_wrong_password_are_named(site, pg_server):
    pg_server.psql(f"ALTER ROLE {site['admin']} NOCREATEROLE")
    _, _, checks = doctor_json()
    assert f"{site['admin']} lacks CREATEROLE" in checks["database demo"]["message"]
    assert f'ALTER ROLE "{site["admin"]}" CREATEROLE;' in checks["database demo"]["fix"]
    wrong = secrets.token_urlsafe(12)
    (site["path"] / "admin-secret").write_text(wrong)
    code, _, checks = doctor_json()
    assert code == 1
    assert checks["database demo"]["message"].startswith(f"cannot log in as {site['admin']}")
    assert wrong not in json.dumps(checks)  # never a password in the output


def test_an_expired_certificate_and_an_unreachable_issuer_fail(site):
    cert, key = site["path"] / "server.crt", site["path"] / "server.key"
    write_certificate(cert, key, not_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    settings = site["path"] / "sqlgate.yaml"
    settings.write_text(
        settings.read_text()
        + f"proxy: {{tls_cert_file: {cert}, tls_key_file: {key}}}\n"
        + "identity:\n  issuers: [{issuer: 'http://127.0.0.1:9/nowhere'}]\n"
    )
    code, _, checks = doctor_json()
    assert code == 1
    assert checks["tls"]["status"] == "fail"
    assert "expired on" in checks["tls"]["message"]
    issuer = checks["issuer http://127.0.0.1:9/nowhere"]
    assert issuer["status"] == "fail"
    assert "discovery or keys not reachable" in issuer["message"]


def test_without_settings_it_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("SQLGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "no settings file found" in result.output
    assert "fix: give -c FILE or set SQLGATE_CONFIG" in result.output


def write_certificate(cert_path, key_path, *, not_after):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "doctor test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=30))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def test_the_connection_budget_is_checked_against_the_servers_max_connections(site, pg_server):
    """connection_limit above the server's max_connections: a warning naming both, with what to change."""
    pg_server.psql(f"GRANT {site['write']} TO {site['admin']} WITH ADMIN OPTION")
    with (site["path"] / "sqlgate.yaml").open("a") as settings:
        settings.write("    connection_limit: 100000\n")
    _code, _report, checks = doctor_json()
    budget = checks["connections demo"]
    assert budget["status"] == "warn"
    assert "databases.demo.connection_limit (100000)" in budget["message"]
    assert "max_connections" in budget["message"]
