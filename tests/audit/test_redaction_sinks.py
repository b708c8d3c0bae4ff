"""No secret reaches any sink: secrets fed through every event path are absent from DB rows, JSONL and stdout."""

from __future__ import annotations

from sqlalchemy import select

from sqlgate.audit.events import AuditEvent
from sqlgate.audit.log import AuditLog
from sqlgate.audit.tables import audit_heads, audit_records
from sqlgate.config import Settings
from sqlgate.store import StateStore
from tests.audit.conftest import ALICE

JWT = "eyJhbGciOiJFUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJhbGljZSIsImF1ZCI6InNxbGdhdGUifQ.MEUCIQDsecretsignature"
PASSWORD = "hunter2-Very-Secret"
DSN_PASSWORD = "dsn-pw-93f1"
AWS_SIGNATURE = "9f2b7c1d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"
AWS_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"
SECRETS = [JWT, PASSWORD, DSN_PASSWORD, AWS_SIGNATURE, AWS_TOKEN, "MEUCIQDsecretsignature"]
PRESIGNED = (
    "https://sts.amazonaws.com/?Action=GetCallerIdentity&X-Amz-Security-Token="
    f"{AWS_TOKEN}&X-Amz-Signature={AWS_SIGNATURE}"
)


def events():
    """Every event path, each carrying every kind of secret in a different place."""
    return [
        AuditEvent(type="auth.failure", outcome="failure", source="10.0.0.1", reason=f"token {JWT} expired"),
        AuditEvent(type="auth.failure", outcome="failure", reason="bad presigned request", data={"url": PRESIGNED}),
        AuditEvent(
            type="lease.mint",
            principal=ALICE,
            database="prod",
            data={"password": PASSWORD, "dsn": f"postgresql://sg_alice:{DSN_PASSWORD}@db:5432/prod"},
        ),
        AuditEvent(type="statement", principal=ALICE, data={"sql": f"ALTER ROLE alice PASSWORD '{PASSWORD}'"}),
        AuditEvent(
            type="statement", principal=ALICE, data={"sql": "ALTER ROLE alice PASSWORD $1", "params": [PASSWORD]}
        ),
        AuditEvent(type="session.start", data={"headers": {"Authorization": f"Bearer {JWT}"}, "startup": [JWT]}),
        AuditEvent(type="policy.decision", outcome="denied", reason=f"conninfo password={PASSWORD} refused"),
        AuditEvent(type="config.reload", data={"aws": {"secret_access_key": PASSWORD}, "note": f"dsn {PRESIGNED}"}),
    ]


async def test_no_secret_in_any_sink(sqlite_url, tmp_path, capsys):
    jsonl = tmp_path / "audit.jsonl"
    settings = Settings(data_dir=tmp_path / "data", state=sqlite_url, audit={"jsonl_file": jsonl, "stdout": True})
    store = await StateStore.open(settings.state_url())
    try:
        log = AuditLog.from_settings(settings, store)
        await log.start()
        for n, event in enumerate(events()):
            if event.is_security:
                await log.record(event)
            elif n % 2:
                await log.submit(event)
            else:
                log.enqueue(event)
        await log.aclose()
        async with store.begin() as conn:
            rows = [
                *(await conn.execute(select(audit_records))).all(),
                *(await conn.execute(select(audit_heads))).all(),
            ]
    finally:
        await store.close()
    outputs = {
        "database": "\n".join(str(tuple(row)) for row in rows),
        "jsonl": jsonl.read_text(),
        "stdout": capsys.readouterr().out,
    }
    for sink, text in outputs.items():
        assert text.count("[REDACTED]") >= 10, sink  # the events did arrive, redacted
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} reached {sink}"
