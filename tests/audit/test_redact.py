"""Redaction: secrets by key name and secrets by shape are removed; SQL keeps its meaning."""

from __future__ import annotations

import pytest

from sqlgate.audit.redact import REDACTED, is_secret_key, redact, redact_text, redact_value

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
AWS_URL = (
    "https://sts.amazonaws.com/?Action=GetCallerIdentity&X-Amz-Credential=AKIAEXAMPLE%2F20260101"
    "&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLETOKEN&X-Amz-Signature=0123456789abcdef0123456789abcdef"
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"token was {JWT} ok", JWT),
        ("postgresql://alice:hunter2@db:5432/prod", "hunter2"),
        ("mysql://root:p%40ss/word@db/x", "p%40ss/word"),
        ("host=db user=alice password=hunter2 dbname=prod", "hunter2"),
        ("host=db password='two words' dbname=prod", "two words"),
        (AWS_URL, "0123456789abcdef0123456789abcdef"),
        (AWS_URL, "FQoGZXIvYXdzEXAMPLETOKEN"),
        ("ALTER ROLE alice PASSWORD 'hunter2'", "hunter2"),
        ("alter user bob with password E'it''s'", "it''s"),
        ("CREATE ROLE x LOGIN PASSWORD $pw$hunter2$pw$", "hunter2"),
        ("CREATE USER 'a'@'%' IDENTIFIED BY 'hunter2'", "hunter2"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ('{"password": "hunter2"}', "hunter2"),
        ("https://x/cb?access_token=s3cr3t&state=1", "s3cr3t"),
    ],
)
def test_secret_shapes_are_removed(text, secret):
    redacted = redact_text(text)
    assert secret not in redacted
    assert REDACTED in redacted


def test_sql_keeps_its_shape():
    assert redact_text("ALTER ROLE alice WITH LOGIN PASSWORD 'x' VALID UNTIL '2027-01-01'") == (
        f"ALTER ROLE alice WITH LOGIN PASSWORD '{REDACTED}' VALID UNTIL '2027-01-01'"
    )
    assert redact_text("SELECT name, 'eyJ' FROM users WHERE id = $1") == "SELECT name, 'eyJ' FROM users WHERE id = $1"


def test_ordinary_text_is_untouched():
    text = "SELECT * FROM orders WHERE status = 'shipped' AND total > 10"
    assert redact_text(text) is text


@pytest.mark.parametrize("key", ["password", "DB_PASSWORD", "client_secret", "Authorization", "id_token", "apiKey"])
def test_secret_keys(key):
    assert is_secret_key(key)
    assert redact_value({key: {"nested": "anything"}}) == {key: REDACTED}


@pytest.mark.parametrize("key", ["sql", "rows", "database", "subject", "duration_ms"])
def test_plain_keys(key):
    assert not is_secret_key(key)


def test_password_bind_parameter_is_redacted():
    data = {"sql": "ALTER ROLE alice PASSWORD $2", "params": ["alice", "hunter2"]}
    assert redact_value(data) == {"params": ["alice", REDACTED], "sql": "ALTER ROLE alice PASSWORD $2"}


def test_nested_values_and_lists():
    value = {"items": [{"dsn": "postgres://u:pw@h/d"}, JWT], "n": 3}
    assert redact_value(value) == {"items": [{"dsn": f"postgres://u:{REDACTED}@h/d"}, REDACTED], "n": 3}


def test_processor_redacts_reason_and_data_only():
    record = {"reason": f"bad token {JWT}", "data": {"password": "x"}, "subject": "alice"}
    assert redact(record) == {"reason": f"bad token {REDACTED}", "data": {"password": REDACTED}, "subject": "alice"}
