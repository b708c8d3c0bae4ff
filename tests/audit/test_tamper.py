"""Tampering with the stored log, on SQLite and PostgreSQL: `sqlgate audit verify` names each kind by its exit code."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, func, select, update
from typer.testing import CliRunner

from sqlgate.audit.chain import Chainer
from sqlgate.audit.pipeline import Pipeline
from sqlgate.audit.storage import read_heads, row_of
from sqlgate.audit.tables import audit_heads, audit_records
from sqlgate.audit.verify import EXIT_CODES
from sqlgate.cli import app
from sqlgate.config import load_settings
from sqlgate.store import StateStore
from tests.audit.conftest import CHAIN, security, tamper, verify


def seq_is(n):
    return (audit_records.c.chain == CHAIN) & (audit_records.c.seq == n)


def test_intact(config):
    code, report = verify(config)
    assert code == 0, report
    assert report["status"] == "intact"
    assert report["records"] == 24


def test_changed_byte(config):
    body = audit_records.c.body
    tamper(config, update(audit_records).where(seq_is(7)).values(body=func.replace(body, '"SELECT', '"SELECt')))
    code, report = verify(config)
    assert code == EXIT_CODES["altered"]
    assert report["findings"][0]["seq"] == 7


def test_deleted_row(config):
    tamper(config, delete(audit_records).where(seq_is(9)))
    code, report = verify(config)
    assert code == EXIT_CODES["deleted"]
    assert report["findings"][0]["seq"] == 9


def test_swapped_rows(config):
    async def swap(conn):
        cols = [c for c in audit_records.c if c.name != "id"]
        a, b = [(await conn.execute(select(*cols).where(seq_is(n)))).one()._asdict() for n in (3, 4)]
        await conn.execute(update(audit_records).where(seq_is(3)).values(seq=-1))
        await conn.execute(update(audit_records).where(seq_is(4)).values(**a))
        await conn.execute(update(audit_records).where(seq_is(-1)).values(**b))

    tamper(config, swap)
    code, _ = verify(config)
    assert code == EXIT_CODES["reordered"]


def test_forged_row(config):
    """A perfectly linked record appended without the signing key is not covered by the signed head."""

    async def forge(conn):
        head = (await conn.execute(select(audit_heads).where(audit_heads.c.chain == CHAIN))).one()
        record = Chainer(CHAIN, head.seq, head.hash)(Pipeline().prepare(security(999)))
        await conn.execute(audit_records.insert().values(**row_of(record)))

    tamper(config, forge)
    code, _ = verify(config)
    assert code == EXIT_CODES["inserted"]


def test_cut_tail(config):
    tamper(config, delete(audit_records).where((audit_records.c.chain == CHAIN) & (audit_records.c.seq > 21)))
    code, report = verify(config)
    assert code == EXIT_CODES["truncated"]
    assert "missing" in report["findings"][0]["message"]


def test_head_signed_by_another_key(config, signer):
    other = signer.sign(CHAIN, 24, "0" * 64)
    tamper(config, update(audit_heads).values(signature=other))
    code, _ = verify(config)
    assert code == EXIT_CODES["bad_signature"]


def test_wrong_public_key(config, tmp_path, signer):
    from sqlgate.audit.keys import public_pem  # noqa: PLC0415

    pem = tmp_path / "other.pem"
    pem.write_text(public_pem(signer.public_key))
    code, _ = verify(config, "--pubkey", str(pem))
    assert code == EXIT_CODES["bad_signature"]


def test_export_verifies_offline_and_detects_edits(config, tmp_path):
    runner = CliRunner()
    exported = runner.invoke(app, ["audit", "export", "-c", str(config)])
    assert exported.exit_code == 0
    lines = exported.stdout.splitlines()
    assert len(lines) == 24
    pubkey = tmp_path / "audit.pub"
    pubkey.write_text(runner.invoke(app, ["audit", "pubkey", "-c", str(config)]).stdout)
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert verify(config, "--file", str(path), "--pubkey", str(pubkey))[0] == 0
    path.write_text("\n".join(lines[:5] + lines[6:]) + "\n")
    assert verify(config, "--file", str(path))[0] == EXIT_CODES["deleted"]
    path.write_text("\n".join([*lines[:5], "{not json", *lines[5:]]) + "\n")
    assert verify(config, "--file", str(path))[0] == EXIT_CODES["unreadable"]
    edited = lines[6].replace('"SELECT', '"DELETE FROM t --')
    assert edited != lines[6]
    path.write_text("\n".join([*lines[:6], edited, *lines[7:]]) + "\n")
    assert verify(config, "--file", str(path))[0] == EXIT_CODES["altered"]


def test_heads_are_kept_per_chain(config):
    async def heads():
        store = await StateStore.open(load_settings(config).state_url())
        try:
            return await read_heads(store)
        finally:
            await store.close()

    assert asyncio.run(heads())[CHAIN].seq == 24
