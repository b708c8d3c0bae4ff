"""Settings: the YAML file, environment overrides, and errors that name path and line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sqlgate.config import json_schema, load_settings, parse_duration
from sqlgate.errors import ConfigError

GOOD = """\
data_dir: ./.sqlgate
state: sqlite
listen: {postgres: "127.0.0.1:6543", http: "127.0.0.1:8480"}
identity:
  dev_issuer: true
  issuers: [{issuer: "https://idp.example.com", audience: "sqlgate", groups_claim: "groups"}]
databases:
  demo:
    engine: postgres
    host: 127.0.0.1
    port: 5432
    dbname: demo
    admin_user: sqlgate_admin
    admin_password_file: secrets/demo
    roles: {read: demo_read, write: demo_write}
policy_file: policy.yaml
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sqlgate.yaml"
    path.write_text(text)
    return path


def test_issue_example_loads_and_resolves_relative_paths(tmp_path):
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.identity.dev_issuer is True
    assert settings.identity.issuers[0].groups_claim == "groups"
    demo = settings.databases["demo"]
    assert demo.port == 5432
    assert demo.roles == {"read": "demo_read", "write": "demo_write"}
    assert demo.admin_password_file == tmp_path / "secrets/demo"
    assert settings.data_dir == tmp_path / ".sqlgate"
    assert settings.policy_file == tmp_path / "policy.yaml"
    assert settings.state_url() == f"sqlite:///{tmp_path / '.sqlgate' / 'state.db'}"


def test_three_mistakes_are_reported_with_paths_and_lines(tmp_path):
    text = GOOD.replace("port: 5432", "port: twelve").replace("state: sqlite", "state: mongodb")
    text += "colour: blue\n"
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    problems = caught.value.problems
    assert "databases.demo.port: not a valid integer (line 11)" in problems
    assert any(p.startswith("state: ") and p.endswith("(line 2)") for p in problems)
    assert "colour: unknown key (line 17)" in problems
    assert len(problems) == 3


def test_inline_password_is_refused_with_instructions(tmp_path):
    text = GOOD.replace("admin_password_file: secrets/demo", "admin_password: hunter2")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    (problem,) = caught.value.problems
    assert problem.startswith("databases.demo.admin_password: inline passwords are refused")
    assert "admin_password_file" in problem
    assert "admin_password_env" in problem
    assert "hunter2" not in str(caught.value)


def test_database_without_a_secret_source_is_refused(tmp_path):
    text = GOOD.replace("    admin_password_file: secrets/demo\n", "")
    with pytest.raises(ConfigError, match="admin_password_file or admin_password_env"):
        load_settings(write(tmp_path, text))


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLGATE_LISTEN__HTTP", "127.0.0.1:9999")
    monkeypatch.setenv("SQLGATE_LOG_LEVEL", "debug")
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.listen.http == "127.0.0.1:9999"
    assert settings.listen.postgres == "127.0.0.1:6543"
    assert settings.log_level == "debug"


def test_sqlgate_config_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLGATE_CONFIG", str(write(tmp_path, GOOD)))
    assert "demo" in load_settings().databases


def test_admin_password_from_file_and_env(tmp_path, monkeypatch):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets/demo").write_text("s3cret\n")
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.databases["demo"].admin_password_value() == "s3cret"
    env_text = GOOD.replace("admin_password_file: secrets/demo", "admin_password_env: DEMO_PW")
    settings = load_settings(write(tmp_path, env_text))
    with pytest.raises(ConfigError, match="DEMO_PW"):
        settings.databases["demo"].admin_password_value()
    monkeypatch.setenv("DEMO_PW", "from-env")
    assert settings.databases["demo"].admin_password_value() == "from-env"


def test_secrets_never_appear_in_dumps(tmp_path):
    settings = load_settings(write(tmp_path, GOOD))
    assert 'admin_password"' not in settings.model_dump_json()


@pytest.mark.parametrize(
    "text",
    ["", "just a string\n", "databases: [1, 2]\n", "listen: {postgres: 1}\n", "key: [unclosed\n"],
)
def test_malformed_files_raise_config_error(tmp_path, text):
    if text == "":
        assert load_settings(write(tmp_path, text)).databases == {}
        return
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        (90, timedelta(seconds=90)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "15x", "-5m", True])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_schema_documents_every_option():
    schema = json_schema()
    assert schema["properties"]["databases"]
    undocumented = [
        f"{name}.{field}"
        for name, definition in [("Settings", schema), *schema["$defs"].items()]
        for field, spec in definition.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert undocumented == []


def test_durations_in_yaml_are_parsed(tmp_path):
    """Durations are written as text in the file; a zero leeway is allowed, a zero grace is not."""
    text = GOOD.replace(
        'issuers: [{issuer: "https://idp.example.com", audience: "sqlgate", groups_claim: "groups"}]',
        'issuers: [{issuer: "https://idp.example.com", leeway: 0, jwks_grace: 2h}]',
    )
    settings = load_settings(write(tmp_path, text))
    assert settings.identity.issuers[0].leeway == timedelta(0)
    assert settings.identity.issuers[0].jwks_grace == timedelta(hours=2)
    with pytest.raises(ConfigError, match="jwks_grace: must be longer than zero"):
        load_settings(write(tmp_path, text.replace("jwks_grace: 2h", "jwks_grace: 0s")))


def with_database(name: str, lines: str) -> str:
    """GOOD with one more database, ``name``, whose host/tls lines are ``lines``."""
    return GOOD.replace(
        "policy_file: policy.yaml\n",
        f"  {name}:\n    dbname: x\n    admin_user: a\n    admin_password_env: X\n{lines}policy_file: policy.yaml\n",
    )


TLS_DEFAULTS = [
    ("    host: db.example.com\n", "verify-full"),
    ("    host: 10.1.2.3\n", "verify-full"),
    ("", "prefer"),  # the default host, 127.0.0.1
    ("    host: localhost\n", "prefer"),
    ("    host: '::1'\n", "prefer"),
    ("    host: 127.0.0.2\n", "prefer"),
    ("    host: db.example.com\n    tls: prefer\n", "prefer"),  # set in the file: it wins
    ("    host: db.example.com\n    tls: disable\n", "disable"),
    ("    host: 127.0.0.1\n    tls: verify-full\n", "verify-full"),
]


def test_database_tls_defaults_to_verify_full_off_loopback(tmp_path):
    for lines, expected in TLS_DEFAULTS:
        settings = load_settings(write(tmp_path, with_database("other", lines)))
        assert (lines, settings.databases["other"].tls) == (lines, expected)
        assert settings.databases["demo"].tls == "prefer"  # GOOD's database is on 127.0.0.1


def test_the_tls_default_is_described_and_overridable_from_the_environment(tmp_path, monkeypatch):
    description = json_schema()["$defs"]["DatabaseConfig"]["properties"]["tls"]["description"]
    assert "verify-full" in description
    assert "loopback" in description
    path = write(tmp_path, with_database("other", "    host: db.example.com\n"))
    monkeypatch.setenv("SQLGATE_DATABASES__OTHER__HOST", "127.0.0.1")
    monkeypatch.setenv("SQLGATE_DATABASES__DEMO__HOST", "db.example.com")
    settings = load_settings(path)
    assert settings.databases["other"].tls == "prefer"
    assert settings.databases["demo"].tls == "verify-full"


def test_tls_files_are_resolved_against_the_settings_file(tmp_path):
    text = with_database("other", "    host: db.example.com\n    tls_ca_file: certs/db-ca.pem\n")
    text += "proxy: {tls_cert_file: certs/server.crt, tls_key_file: certs/server.key}\n"
    settings = load_settings(write(tmp_path, text))
    assert settings.databases["other"].tls_ca_file == tmp_path / "certs/db-ca.pem"
    assert settings.proxy.tls_cert_file == tmp_path / "certs/server.crt"
    assert settings.proxy.tls_key_file == tmp_path / "certs/server.key"


def test_plain_http_settings(tmp_path):
    assert load_settings(write(tmp_path, GOOD)).api.allow_plaintext is False
    assert load_settings(write(tmp_path, GOOD)).api.require_tls is False
    settings = load_settings(write(tmp_path, GOOD + "api: {allow_plaintext: true}\n"))
    assert settings.api.allow_plaintext is True
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, GOOD + "api: {allow_plaintext: true, require_tls: true}\n"))
    assert any("contradict" in problem for problem in caught.value.problems)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://sqlgate.example.com/", "https://sqlgate.example.com"),
        ("HTTPS://GW.Example.COM:8443/db/", "https://gw.example.com:8443/db"),
        ("http://127.0.0.1:8480", "http://127.0.0.1:8480"),
    ],
)
def test_public_url_is_normalized(tmp_path, url, expected):
    settings = load_settings(write(tmp_path, GOOD + f"public_url: {url!r}\n"))
    assert settings.public_url == expected


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("public_url: http://sqlgate.example.com", "https://"),
        ("public_url: sqlgate.example.com", "https://"),
        ("public_url: https://user:pw@gw.example.com", "must not hold a user"),
        ("public_url: https://gw.example.com/?x=1", "must not hold a user, a password, a query"),
        ("public_url: https://gw.example.com:99999", "invalid port"),
    ],
)
def test_bad_public_urls_are_refused(tmp_path, line, problem):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, GOOD + line + "\n"))
    assert any(p.startswith("public_url: ") and problem in p for p in caught.value.problems), caught.value.problems
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('audience: "sqlgate"', "audience: []", "identity.issuers.0.audience: must name at least one audience"),
        ('audience: "sqlgate"', 'audience: "two words"', "identity.issuers.0.audience: each audience must be"),
        ("dev_issuer: true", 'dev_issuer: true\n  deployment_id: "a\\nb"', "identity.deployment_id: must be 1-512"),
        ("dev_issuer: true", 'dev_issuer: true\n  aws: {server_id: ""}', "identity.aws.server_id: must be 1-512"),
    ],
)
def test_bad_gateway_names_are_refused(tmp_path, old, new, problem):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, GOOD.replace(old, new)))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_audience_and_server_id_default_to_the_gateway_id(tmp_path):
    """Unset, they are filled in with the gateway's id (sqlgate.identity.deployment), never a shared constant."""
    settings = load_settings(write(tmp_path, GOOD.replace('audience: "sqlgate", ', "")))
    assert settings.identity.issuers[0].audience is None
    assert settings.identity.aws.server_id is None
    assert settings.identity.deployment_id is None


def test_requests_and_webhook_settings(tmp_path):
    """pending_ttl defaults to 24h; a webhook's secret_file is resolved beside the file; dumps hide the URL's path."""
    assert load_settings(write(tmp_path, GOOD)).requests.pending_ttl == timedelta(hours=24)
    text = GOOD + (
        "requests: {pending_ttl: 4h}\n"
        "notify:\n  webhooks:\n"
        "    - {url: 'https://hooks.slack.com/services/T0/B0/XYZ', events: [filed, expired], secret_file: hook.key}\n"
    )
    settings = load_settings(write(tmp_path, text))
    assert settings.requests.pending_ttl == timedelta(hours=4)
    [hook] = settings.notify.webhooks
    assert (hook.events, hook.secret_file) == (["filed", "expired"], tmp_path / "hook.key")
    assert "XYZ" not in str(settings.model_dump(mode="json"))
    assert settings.model_dump(mode="json")["notify"]["webhooks"][0]["url"] == "https://hooks.slack.com/..."
    with pytest.raises(ConfigError, match=r"notify\.webhooks\.0\.events\.0: Input should be 'filed'"):
        load_settings(write(tmp_path, text.replace("[filed, expired]", "[filed_too]")))
    with pytest.raises(ConfigError, match="set secret_env or secret_file, not both"):
        load_settings(write(tmp_path, text.replace("secret_file: hook.key", "secret_file: k, secret_env: K")))
