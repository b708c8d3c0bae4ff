"""verify(): each kind of tampering on in-memory records is reported as what it is."""

from __future__ import annotations

import dataclasses
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sqlgate.audit.chain import CHECKPOINT, Chainer, new_record, with_hash
from sqlgate.audit.pipeline import Pipeline
from sqlgate.audit.storage import Entry, Head
from sqlgate.audit.verify import EXIT_CODES, verify, verify_lines
from tests.audit.conftest import statement


def build(signer, count=12, every=5, chain="r1"):
    """Entries of one chain (a checkpoint after every ``every`` records) and its signed head."""
    chainer, pipeline, entries = Chainer(chain), Pipeline(), []
    for n in range(count):
        records = [chainer(pipeline.prepare(statement(n)))]
        if (n + 1) % every == 0:
            records.append(chainer.checkpoint(signer))
        entries += [Entry(r.body, r.hash, r.chain, r.seq, r.prev_hash, r.fields["type"], r.seq) for r in records]
    signature = signer.sign(chain, chainer.seq, chainer.head_hash, [chain])
    head = Head(chain, chainer.seq, chainer.head_hash, "t", signer.key_id, signature, (chain,))
    return entries, {chain: head}


def test_intact(signer):
    entries, heads = build(signer)
    report = verify(entries, signer.public_key, heads=heads)
    assert report.ok, report.findings
    assert report.exit_code == 0
    assert report.chains["r1"].checkpoints == 2
    assert report.chains["r1"].unproven == 0


def test_changed_byte_is_altered(signer):
    entries, heads = build(signer)
    entries[3] = dataclasses.replace(entries[3], body=entries[3].body.replace("SELECT 3", "SELECT 4"))
    report = verify(entries, signer.public_key, heads=heads)
    assert (report.status, report.findings[0].seq) == ("altered", 4)


def test_rehashed_record_is_altered(signer):
    """Recomputing the changed record's own hash does not help: the next record no longer links to it."""
    entries, heads = build(signer)
    body = entries[3].body.replace("SELECT 3", "SELECT 4")
    entries[3] = dataclasses.replace(entries[3], body=body, hash=hashlib.sha256(body.encode()).hexdigest())
    report = verify(entries, signer.public_key, heads=heads)
    assert (report.status, report.findings[0].seq) == ("altered", 4)


def test_changed_index_column_is_altered(signer):
    entries, heads = build(signer)
    entries[2] = dataclasses.replace(entries[2], type="auth.success")
    assert verify(entries, signer.public_key, heads=heads).status == "altered"


def test_deleted_record(signer):
    entries, heads = build(signer)
    del entries[2]
    report = verify(entries, signer.public_key, heads=heads)
    assert (report.status, report.findings[0].seq) == ("deleted", 3)
    assert report.exit_code == EXIT_CODES["deleted"]


def test_deleted_first_record(signer):
    entries, heads = build(signer)
    assert verify(entries[1:], signer.public_key, heads=heads).status == "deleted"


def test_swapped_records_are_reordered(signer):
    entries, heads = build(signer)
    entries[2], entries[3] = entries[3], entries[2]
    report = verify(entries, signer.public_key, heads=heads)
    assert report.status == "reordered"


def test_duplicate_record_is_inserted(signer):
    entries, heads = build(signer)
    entries.insert(4, entries[3])
    assert verify(entries, signer.public_key, heads=heads).status == "inserted"


def test_forged_record_after_the_head_is_inserted(signer):
    """A well-formed record appended by someone without the key is beyond the signed head."""
    entries, heads = build(signer, count=10)
    chainer = Chainer("r1", heads["r1"].seq, heads["r1"].hash)
    forged = chainer(Pipeline().prepare(statement(99)))
    entries.append(Entry(forged.body, forged.hash, "r1", forged.seq, forged.prev_hash, "statement", 99))
    assert verify(entries, signer.public_key, heads=heads).status == "inserted"


def test_cut_tail_is_truncated(signer):
    entries, heads = build(signer, count=12)
    report = verify(entries[:-3], signer.public_key, heads=heads)
    assert report.status == "truncated"
    assert report.exit_code == EXIT_CODES["truncated"]


def test_removed_last_checkpoint_is_truncated(signer):
    entries, heads = build(signer, count=10)
    assert entries[-1].type == "audit.checkpoint"
    assert verify(entries[:-1], signer.public_key, heads=heads).status == "truncated"


def test_missing_head_of_a_signed_chain_is_truncated(signer):
    entries, _ = build(signer)
    assert verify(entries, signer.public_key, heads={}).status == "truncated"


def test_chain_nobody_signed_is_inserted(signer):
    entries, _ = build(signer, count=3)
    assert verify(entries, signer.public_key, heads={}).status == "inserted"


def test_other_key_is_bad_signature(signer):
    entries, heads = build(signer)
    other = Ed25519PrivateKey.generate().public_key()
    report = verify(entries, other, heads=heads)
    assert report.status == "bad_signature"
    assert "signed by key" in report.findings[0].message


def test_forged_head_is_bad_signature(signer):
    entries, heads = build(signer)
    heads["r1"] = dataclasses.replace(heads["r1"], signature=heads["r1"].signature[::-1])
    assert verify(entries, signer.public_key, heads=heads).status == "bad_signature"


def test_chains_are_verified_independently(signer):
    a, heads_a = build(signer, chain="a")
    b, heads_b = build(signer, chain="b")
    merged = [entry for pair in zip(a, b, strict=True) for entry in pair]
    report = verify(merged, signer.public_key, heads={**heads_a, **heads_b})
    assert report.ok
    assert sorted(report.chains) == ["a", "b"]


def test_lines_offline_and_unproven_tail(signer):
    entries, _ = build(signer, count=12)
    lines = [with_hash(e.body, e.hash) + "\n" for e in entries]
    report = verify_lines(lines, signer.public_key)
    assert report.ok
    assert report.chains["r1"].unproven == 2  # the two records after the last checkpoint
    broken = [*lines[:4], "not json\n", *lines[4:]]
    assert verify_lines(broken, signer.public_key).status == "unreadable"


def test_partial_export_may_start_later(signer):
    entries, _ = build(signer, count=12)
    lines = [with_hash(e.body, e.hash) for e in entries[4:]]
    assert verify_lines(lines, signer.public_key).status == "deleted"
    assert verify_lines(lines, signer.public_key, partial=True).ok


def legacy_build(signer, count=7, chain="r1"):
    """Entries and head as written before heads and checkpoints signed the chain list."""
    chainer, entries = Chainer(chain), []
    for n in range(count):
        records = [chainer(Pipeline().prepare(statement(n)))]
        if n == 4:
            signed = {"chain": chain, "seq": chainer.seq, "hash": chainer.head_hash}
            signature = signer.sign(chain, chainer.seq, chainer.head_hash)
            data = {"signed": signed, "signature": signature, "key_id": signer.key_id}
            records.append(chainer(new_record(CHECKPOINT, "2024-01-01T00:00:00Z", data=data)))
        entries += [Entry(r.body, r.hash, r.chain, r.seq, r.prev_hash, r.fields["type"], r.seq) for r in records]
    signature = signer.sign(chain, chainer.seq, chainer.head_hash)
    return entries, {chain: Head(chain, chainer.seq, chainer.head_hash, "t", signer.key_id, signature)}


def test_log_written_before_chain_lists_still_verifies(signer):
    entries, heads = legacy_build(signer)
    report = verify(entries, signer.public_key, heads=heads)
    assert report.ok, report.findings
    assert report.chains["r1"].checkpoints == 1


def test_chain_list_cannot_be_added_to_or_stripped_from_a_signature(signer):
    entries, heads = build(signer)
    stripped = dataclasses.replace(heads["r1"], chains=None)
    assert verify(entries, signer.public_key, heads={"r1": stripped}).status == "bad_signature"
    legacy, legacy_heads = legacy_build(signer)
    claimed = dataclasses.replace(legacy_heads["r1"], chains=("r1",))
    assert verify(legacy, signer.public_key, heads={"r1": claimed}).status == "bad_signature"


def test_chain_named_by_a_checkpoint_must_exist(signer):
    """Chain r2 is named by r1's checkpoints; its records and head are gone."""
    chainer, pipeline = Chainer("r1"), Pipeline()
    records = [chainer(pipeline.prepare(statement(n))) for n in range(5)]
    records.append(chainer.checkpoint(signer, chains=["r2"]))
    lines = [r.line() for r in records]
    report = verify_lines(lines, signer.public_key)
    assert (report.status, report.findings[0].chain) == ("deleted", "r2")
    assert verify_lines(lines, signer.public_key, partial=True).ok  # an export --since may leave chains out
