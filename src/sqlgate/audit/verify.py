"""Verify audit records: a pure function from stored records to a report of the first problem.

``verify(entries, pubkey, heads=...)`` reads each chain in stored order and
checks, for every record, that SHA-256 of its stored ``body`` is its ``hash``,
that the body's ``chain``/``seq``/``prev_hash``/``type`` agree with the index
columns, that ``seq`` follows the previous record's and ``prev_hash`` is the
previous record's hash, and that every checkpoint's Ed25519 signature covers
the record before it. Kinds of problem, each with its own exit code:

=============  ====  ============================================================
intact            0  every record links and every signature verifies
altered           4  a record's bytes or index columns changed
deleted           5  seq numbers missing (also at the start of a chain)
inserted          6  a record no signature covers: a second record for a seq, or
                     records beyond the signed head / in an unsigned chain
reordered         7  records stored out of sequence
truncated         8  the tail was cut: records end before the signed head
bad_signature     9  a checkpoint or head signature does not verify
unreadable       10  a record cannot be read at all
=============  ====  ============================================================

How a cut tail is detected, and the limits: checkpoints prove everything
before them, and the store also keeps a signed *head* per chain (its newest
seq and hash, re-signed in every batch's transaction). With ``heads`` given,
records must end exactly at the signed head: a cut tail (including a removed
last checkpoint) reads as ``truncated``, and records appended after it as
``inserted``. What this cannot catch: someone with write access to the store
who restores an *older* signed head together with cutting the tail to it.
Against that, ship records off the machine as they are written (the JSONL,
stdout and OpenTelemetry sinks carry every checkpoint) and compare. Without
``heads`` (an exported file), the records after the last checkpoint cannot be
proven: they are counted as ``unproven`` and the report says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sqlgate.audit.chain import CHECKPOINT, GENESIS, without_hash
from sqlgate.audit.keys import key_id, signed_payload, verify_signature
from sqlgate.audit.storage import Entry, Head

Kind = Literal["altered", "deleted", "inserted", "reordered", "truncated", "bad_signature", "unreadable"]
EXIT_CODES: dict[str, int] = {
    "intact": 0,
    "altered": 4,
    "deleted": 5,
    "inserted": 6,
    "reordered": 7,
    "truncated": 8,
    "bad_signature": 9,
    "unreadable": 10,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: its kind, where (chain, seq, stored position) and what was seen."""

    kind: Kind
    chain: str
    seq: int | None
    position: int | None
    message: str


@dataclass(slots=True)
class ChainReport:
    """What was seen of one chain."""

    chain: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    last_hash: str = GENESIS
    checkpoints: int = 0
    proven_seq: int = 0
    head_seq: int | None = None
    finding: Finding | None = None
    gap: tuple[int, int, int | None] | None = field(default=None, repr=False)  # first, last missing, position
    seen_after_gap: set[int] = field(default_factory=set, repr=False)

    @property
    def unproven(self) -> int:
        """Records after the last checkpoint (or signed head) that vouches for them."""
        return max(0, self.last_seq - self.proven_seq)


@dataclass(slots=True)
class VerifyReport:
    """The outcome of :func:`verify`: per-chain summaries and the problems found (first one first)."""

    chains: dict[str, ChainReport]
    findings: list[Finding]

    @property
    def status(self) -> str:
        """``intact`` or the kind of the first problem."""
        return self.findings[0].kind if self.findings else "intact"

    @property
    def exit_code(self) -> int:
        """The command-line exit code of :attr:`status`."""
        return EXIT_CODES[self.status]

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        """The report as JSON values."""
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "records": sum(c.records for c in self.chains.values()),
            "chains": [
                {
                    "chain": c.chain,
                    "records": c.records,
                    "first_seq": c.first_seq,
                    "last_seq": c.last_seq,
                    "checkpoints": c.checkpoints,
                    "proven_seq": c.proven_seq,
                    "head_seq": c.head_seq,
                    "unproven": c.unproven,
                }
                for c in self.chains.values()
            ],
            "findings": [
                {"kind": f.kind, "chain": f.chain, "seq": f.seq, "position": f.position, "message": f.message}
                for f in self.findings
            ],
        }


def verify(
    entries: Iterable[Entry],
    pubkey: Ed25519PublicKey,
    *,
    heads: Mapping[str, Head] | None = None,
    partial: bool = False,
) -> VerifyReport:
    """Check ``entries`` (records of any chains, each chain in stored order) against ``pubkey``.

    ``heads``: the signed head of every chain (from the store); ``None`` for an
    exported file, whose tail after the last checkpoint is then only counted.
    ``partial``: chains may start after seq 1 (an export made with ``--since``).
    """
    checker = Verifier(pubkey, partial=partial)
    for entry in entries:
        checker.add(entry)
    return checker.finish(heads)


class Verifier:
    """Incremental form of :func:`verify`: ``add`` entries as they are read, then ``finish``."""

    def __init__(self, pubkey: Ed25519PublicKey, *, partial: bool) -> None:
        self.pubkey = pubkey
        self.key_id = key_id(pubkey)
        self.partial = partial
        self.chains: dict[str, ChainReport] = {}
        self.findings: list[Finding] = []

    def add(self, entry: Entry) -> None:
        """Check the next stored record."""
        fields = _fields(entry.body)
        chain = fields[0] if fields else entry.chain or "?"
        state = self.chains.get(chain)
        if state is None:
            state = self.chains[chain] = ChainReport(chain)
        state.records += 1
        if state.finding is not None:
            return
        if state.gap is not None:
            self._after_gap(state, fields, entry)
            return
        self._check(state, fields, entry)

    def _fail(self, state: ChainReport, kind: Kind, seq: int | None, entry: Entry | None, message: str) -> None:
        state.finding = Finding(kind, state.chain, seq, entry.position if entry else None, message)
        self.findings.append(state.finding)

    def _check(self, state: ChainReport, fields: _Fields | None, entry: Entry) -> None:
        digest = hashlib.sha256(entry.body.encode("utf-8")).hexdigest()
        if digest != entry.hash:
            self._fail(state, "altered", entry.seq, entry, "the record's bytes do not match its hash")
            return
        if fields is None:
            self._fail(state, "unreadable", entry.seq, entry, "the record is not an audit record")
            return
        _, seq, prev_hash, record_type = fields
        columns = (entry.chain, entry.seq, entry.prev_hash, entry.type)
        if any(col is not None and col != val for col, val in zip(columns, fields, strict=True)):
            self._fail(state, "altered", seq, entry, "the index columns disagree with the record")
            return
        if state.first_seq is None:
            state.first_seq = seq
            if self.partial and seq > 1:
                state.last_seq, state.last_hash = seq - 1, prev_hash
                state.proven_seq = seq - 1
        if not self._in_sequence(state, seq, prev_hash, entry):
            return
        if record_type == CHECKPOINT and not self._checkpoint(state, entry, seq, prev_hash):
            return
        state.last_seq, state.last_hash = seq, digest

    def _in_sequence(self, state: ChainReport, seq: int, prev_hash: str, entry: Entry) -> bool:
        expected = state.last_seq + 1
        if seq == expected:
            if prev_hash != state.last_hash:
                self._fail(state, "altered", state.last_seq, entry, f"seq {seq} does not link to seq {seq - 1}")
                return False
            return True
        if seq > expected:
            state.gap = (expected, seq - 1, entry.position)
            state.seen_after_gap.add(seq)
            return False
        self._fail(state, "inserted", seq, entry, f"a second record claims seq {seq}")
        return False

    def _after_gap(self, state: ChainReport, fields: _Fields | None, entry: Entry) -> None:
        assert state.gap is not None
        if fields is None:
            return
        first, last, _ = state.gap
        seq = fields[1]
        if first <= seq <= last:
            state.finding = Finding("reordered", state.chain, seq, entry.position, f"seq {seq} is stored out of order")
            self.findings.append(state.finding)
        elif seq in state.seen_after_gap:
            state.finding = Finding("inserted", state.chain, seq, entry.position, f"a second record claims seq {seq}")
            self.findings.append(state.finding)
        state.seen_after_gap.add(seq)

    def _checkpoint(self, state: ChainReport, entry: Entry, seq: int, prev_hash: str) -> bool:
        try:
            data = json.loads(entry.body)["data"]
            signed, signature = data["signed"], data["signature"]
        except (ValueError, KeyError, TypeError):
            self._fail(state, "unreadable", seq, entry, "the checkpoint has no signature")
            return False
        expected = {"chain": state.chain, "seq": seq - 1, "hash": prev_hash}
        if signed != expected or not self._signature_ok(state.chain, seq - 1, prev_hash, signature):
            signer = data.get("key_id")
            why = f" (signed by key {signer}, not {self.key_id})" if signer != self.key_id else ""
            self._fail(state, "bad_signature", seq, entry, f"checkpoint seq {seq}: the signature does not verify{why}")
            return False
        state.checkpoints += 1
        state.proven_seq = seq  # the checkpoint itself carries the signature: only deleting it goes unseen
        return True

    def _signature_ok(self, chain: str, seq: int, record_hash: str, signature: str) -> bool:
        return verify_signature(self.pubkey, signature, signed_payload(chain, seq, record_hash))

    def unreadable(self, position: int, message: str) -> None:
        """Note a stored item that is not a record at all (a broken line of a file)."""
        finding = Finding("unreadable", "?", None, position, message)
        self.findings.append(finding)

    def finish(self, heads: Mapping[str, Head] | None) -> VerifyReport:
        """The report, after comparing each chain's end with its signed head (when ``heads`` is given)."""
        for state in self.chains.values():
            if state.finding is None and state.gap is not None:
                first, last, position = state.gap
                count = last - first + 1
                message = f"{count} record(s) missing from seq {first}" if count > 1 else f"seq {first} is missing"
                state.finding = Finding("deleted", state.chain, first, position, message)
                self.findings.append(state.finding)
        if heads is not None:
            for chain in sorted(set(heads) - set(self.chains)):
                self.chains[chain] = ChainReport(chain)
            for state in self.chains.values():
                if state.finding is None:
                    self._against_head(state, heads.get(state.chain))
        return VerifyReport(self.chains, self.findings)

    def _against_head(self, state: ChainReport, head: Head | None) -> None:
        if head is None:
            kind: Kind = "truncated" if state.checkpoints else "inserted"
            self._fail(state, kind, None, None, "the chain has no signed head in the store")
            return
        state.head_seq = head.seq
        if not self._signature_ok(head.chain, head.seq, head.hash, head.signature):
            self._fail(state, "bad_signature", head.seq, None, "the chain's head signature does not verify")
        elif state.last_seq < head.seq:
            missing = head.seq - state.last_seq
            self._fail(state, "truncated", state.last_seq + 1, None, f"the last {missing} record(s) are missing")
        elif state.last_seq > head.seq:
            self._fail(state, "inserted", head.seq + 1, None, "records beyond the signed head")
        elif state.last_hash != head.hash:
            self._fail(state, "altered", head.seq, None, "the last record is not the one the head signed")
        else:
            state.proven_seq = state.last_seq


def verify_lines(lines: Iterable[str], pubkey: Ed25519PublicKey, *, partial: bool = False) -> VerifyReport:
    """Verify an exported JSONL file (records with their ``hash``), offline; positions are line numbers."""
    checker = Verifier(pubkey, partial=partial)
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            body, record_hash = without_hash(line)
        except ValueError:
            checker.unreadable(number, f"line {number} is not an audit record with a hash")
            continue
        checker.add(Entry(body, record_hash, position=number))
    return checker.finish(None)


_Fields = tuple[str, int, str, str]


def _fields(body: str) -> _Fields | None:
    """(chain, seq, prev_hash, type) of a stored body, read by position in its canonical JSON.

    Sound for records this log wrote (after ``data`` only fixed-shape members
    follow), and a forged body gains nothing from a wrong reading: its hash
    would still have to match what a signature covers. Anything unexpected
    goes through ``json``.
    """
    try:
        if not body.startswith('{"chain":"') or not body.endswith('"}'):
            return _fields_json(body)
        chain = body[10 : body.index('"', 10)]
        prev_at = body.rindex(',"prev_hash":"')
        seq_at = body.rindex(',"seq":', prev_at)
        type_at = body.rindex(',"type":"', seq_at)
        prev_hash = body[prev_at + 14 : prev_at + 78]
        seq = int(body[seq_at + 7 : body.index(",", seq_at + 7)])
        record_type = body[type_at + 9 : -2]
    except ValueError:
        return _fields_json(body)
    if body[prev_at + 78] != '"' or '"' in record_type or "\\" in chain:
        return _fields_json(body)
    return chain, seq, prev_hash, record_type


def _fields_json(body: str) -> _Fields | None:
    try:
        record = json.loads(body)
        chain, seq, prev_hash, record_type = record["chain"], record["seq"], record["prev_hash"], record["type"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (
        isinstance(chain, str) and type(seq) is int and isinstance(prev_hash, str) and isinstance(record_type, str)
    ):
        return None
    return chain, seq, prev_hash, record_type
