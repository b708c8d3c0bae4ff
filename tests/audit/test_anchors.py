"""Exported heads, signed chain lists and --strict: what verify proves against an attacker on the gateway host.

Each attack here leaves a log that `sqlgate audit verify` alone finds intact
(the attacker holds the host's signing key and rewrites heads and checkpoints
to match); the heads exported earlier with `sqlgate audit head`, or the chain
list the other replicas' heads sign, still catch it. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, update

from sqlgate.audit.keys import Signer
from sqlgate.audit.tables import audit_heads, audit_records
from sqlgate.audit.verify import EXIT_CODES
from tests.audit.attacker import cut, rechain, replace_host_key, wipe
from tests.audit.conftest import CHAIN, cli, populate, tamper, verify, write_config


def export_heads(config, path):
    """``sqlgate audit head`` into ``path`` (kept, in real life, where this host cannot write); the heads."""
    result = cli("audit", "head", "-c", str(config))
    assert result.exit_code == 0, result.output
    path.write_text(result.stdout)
    return json.loads(result.stdout)


def host_signer(tmp_path):
    return Signer.load(tmp_path / "data" / "audit" / "signing_key.pem")


def test_head_prints_every_chain_signed(config, tmp_path):
    heads = export_heads(config, tmp_path / "heads.json")
    assert [(h["chain"], h["seq"], h["chains"]) for h in heads] == [(CHAIN, 24, [CHAIN])]
    assert set(heads[0]) >= {"chain", "seq", "hash", "key_id", "signature"}
    assert heads[0]["key_id"] == host_signer(tmp_path).key_id
    assert json.loads(cli("audit", "head", "-c", str(config), "--json").stdout) == heads


def test_log_that_grew_after_the_export_passes(config, tmp_path):
    kept = tmp_path / "heads.json"
    export_heads(config, kept)
    populate(config, count=7, start=20)
    code, report = verify(config, "--head", str(kept))
    assert code == 0, report
    assert report["chains"][0]["anchor_seq"] == 24
    assert report["chains"][0]["last_seq"] > 24
    assert verify(config, "--head", str(kept), "--strict")[0] == 0


def test_wiped_log_fails_against_exported_head(config, tmp_path):
    kept = tmp_path / "heads.json"
    export_heads(config, kept)
    wipe(config)
    assert verify(config)[0] == 0  # nothing left to contradict: verify alone cannot tell
    code, report = verify(config, "--head", str(kept))
    assert code == EXIT_CODES["truncated"]
    assert report["findings"][0]["chain"] == CHAIN
    assert "exported head" in report["findings"][0]["message"]


def test_wiped_and_rewritten_log_fails_against_exported_head(config, tmp_path):
    """A fresh log written under the same chain id, longer than the old one: seq 24 is another record."""
    kept = tmp_path / "heads.json"
    export_heads(config, kept)
    wipe(config)
    populate(config, count=30)
    assert verify(config)[0] == 0
    code, report = verify(config, "--head", str(kept))
    assert code == EXIT_CODES["altered"]
    assert report["findings"][0]["seq"] == 24


def test_truncated_log_fails_against_exported_head(config, tmp_path):
    kept = tmp_path / "heads.json"
    export_heads(config, kept)
    cut(config, host_signer(tmp_path), CHAIN, 13)  # the tail gone, the stored head re-signed to match
    assert verify(config)[0] == 0
    code, report = verify(config, "--head", str(kept))
    assert code == EXIT_CODES["truncated"]
    assert report["findings"][0]["seq"] == 14


def test_rechained_log_fails_against_exported_head(config, tmp_path):
    """One statement rewritten, everything after it re-linked and re-signed with the host key."""
    kept = tmp_path / "heads.json"
    export_heads(config, kept)

    def edit(record):
        if record["seq"] == 9:
            record["data"]["sql"] = "SELECT 'nothing to see'"
        return record

    rechain(config, host_signer(tmp_path), edit=edit)
    assert verify(config)[0] == 0
    assert verify(config, "--head", str(kept))[0] == EXIT_CODES["altered"]


def test_exported_head_catches_a_replaced_host_key(config, tmp_path):
    """Without pinned keys, the head exported before the key was replaced no longer verifies."""
    kept = tmp_path / "heads.json"
    export_heads(config, kept)
    attacker = Signer.load_or_create(tmp_path / "attacker.pem")
    rechain(config, attacker)
    replace_host_key(tmp_path / "data" / "audit" / "signing_key.pem", tmp_path / "attacker.pem")
    assert verify(config)[0] == 0
    code, report = verify(config, "--head", str(kept))
    assert code == EXIT_CODES["bad_signature"]
    assert "exported head" in report["findings"][0]["message"]


def two_chains(tmp_path, state_url, config):
    """A second replica (chain replica-b, same key) on the same state database; chain a writes again after it."""
    other = write_config(tmp_path / "b.yaml", tmp_path, state_url, chain="replica-b")
    populate(other, count=10)
    populate(config, count=5, start=20)
    return other


def test_chain_deleted_with_its_head_fails(config, tmp_path, state_url):
    two_chains(tmp_path, state_url, config)
    assert verify(config)[0] == 0
    tamper(
        config,
        delete(audit_records).where(audit_records.c.chain == "replica-b"),
        delete(audit_heads).where(audit_heads.c.chain == "replica-b"),
    )
    code, report = verify(config)
    assert code == EXIT_CODES["deleted"]
    finding = report["findings"][0]
    assert finding["chain"] == "replica-b"
    assert "replica-a" in finding["message"]


def test_stripping_the_signed_chain_list_from_a_head_fails(config, tmp_path, state_url):
    """A head whose chain list is blanked (to hide a deleted chain) no longer matches its signature."""
    two_chains(tmp_path, state_url, config)
    tamper(config, update(audit_heads).where(audit_heads.c.chain == CHAIN).values(chains=None))
    assert verify(config)[0] == EXIT_CODES["bad_signature"]
    tamper(config, update(audit_heads).where(audit_heads.c.chain == CHAIN).values(chains='["replica-a"]'))
    assert verify(config)[0] == EXIT_CODES["bad_signature"]


def test_head_lists_every_chain(config, tmp_path, state_url):
    two_chains(tmp_path, state_url, config)
    heads = {h["chain"]: h for h in export_heads(config, tmp_path / "heads.json")}
    assert heads[CHAIN]["chains"] == [CHAIN, "replica-b"]
    assert heads["replica-b"]["chains"] == [CHAIN, "replica-b"]


def exported(config, path):
    result = cli("audit", "export", "-c", str(config))
    assert result.exit_code == 0
    path.write_text(result.stdout)
    return result.stdout.splitlines()


def test_strict_fails_on_a_tail_no_signed_head_covers(config, tmp_path):
    """An export whose last checkpoint is missing: its tail is unproven; --strict fails, a kept head covers it."""
    kept = tmp_path / "heads.json"
    populate(config, count=2, start=20)  # 2 records and the closing checkpoint
    export_heads(config, kept)
    path = tmp_path / "audit.jsonl"
    lines = exported(config, path)
    path.write_text("\n".join(lines[:-1]) + "\n")
    code, report = verify(config, "--file", str(path))
    assert code == 0
    assert report["chains"][0]["unproven"] == 2
    code, report = verify(config, "--file", str(path), "--strict")
    assert code == EXIT_CODES["unproven"] == 12
    assert report["findings"][0]["kind"] == "unproven"
    exported(config, path)
    assert verify(config, "--file", str(path), "--strict", "--head", str(kept))[0] == 0


def test_strict_fails_on_dropped_records(tmp_path, state_url):
    config = write_config(tmp_path / "sqlgate.yaml", tmp_path, state_url, extra="  on_full: drop\n  queue_size: 1\n")
    populate(config, count=20)
    code, report = verify(config)
    assert code == 0, report
    assert report["dropped"] > 0
    assert report["chains"][0]["dropped"] == report["dropped"]
    human = cli("audit", "verify", "-c", str(config))
    assert "dropped" in human.stdout
    code, report = verify(config, "--strict")
    assert code == EXIT_CODES["dropped"] == 11
    assert report["findings"][0]["kind"] == "dropped"


def test_head_refuses_a_forged_stored_head(config, signer):
    tamper(config, update(audit_heads).values(signature=signer.sign(CHAIN, 24, "0" * 64)))
    result = cli("audit", "head", "-c", str(config))
    assert result.exit_code == EXIT_CODES["bad_signature"]
    assert result.stdout == ""
    assert "not signed by a trusted key" in result.stderr


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json", "cannot read heads"),
        ("[]", "holds no heads"),
        ('[{"chain": "replica-a", "seq": 3}]', "`hash`"),
        ('[{"chain": "replica-a", "seq": 0, "hash": "x"}]', "`seq`"),
    ],
)
def test_unreadable_head_file_is_refused(config, tmp_path, content, reason):
    path = tmp_path / "heads.json"
    path.write_text(content)
    result = cli("audit", "verify", "-c", str(config), "--head", str(path))
    assert result.exit_code == EXIT_CODES["unreadable"]
    assert reason in result.stderr
