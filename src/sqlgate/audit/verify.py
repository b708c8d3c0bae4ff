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
dropped          11  (``strict``) checkpoints say records were dropped (e.g. the
                     queue overflowed with ``on_full: drop``)
unproven         12  (``strict``) records after the last checkpoint that no
                     signed head covers
=============  ====  ============================================================

Signatures are checked against a :class:`~sqlgate.audit.keys.KeyRing`: pinned
keys, or the key found on the host (which a caller should say it trusted).
Heads and checkpoints sign the chain ids the state database held; every chain
a verified signature names must be present, so deleting a whole chain together
with its head reads as ``deleted``. ``anchors`` are heads exported earlier
(``sqlgate audit head``) and kept where this host cannot rewrite them: each
must be signed by a trusted key and its chain must hold that record with that
hash, so a wiped, truncated or re-chained log fails even when the stored heads
and checkpoints were rewritten to match (``truncated`` when the records end
before it, ``altered`` when the record there is another one).

How a cut tail is detected, and the limits: checkpoints prove everything
before them, and the store also keeps a signed *head* per chain (its newest
seq and hash, re-signed in every batch's transaction). With ``heads`` given,
records must end exactly at the signed head: a cut tail (including a removed
last checkpoint) reads as ``truncated``, and records appended after it as
``inserted``. What this cannot catch: someone with write access to the store
who restores an *older* signed head together with cutting the tail to it.
Against that, export heads off the machine from time to time and pass them as
``anchors``, or ship records off the machine as they are written (the JSONL,
stdout and OpenTelemetry sinks carry every checkpoint) and compare. Without
``heads`` (an exported file), the records after the last checkpoint cannot be
proven: they are counted as ``unproven`` and the report says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sqlgate.audit.chain import CHECKPOINT, GENESIS, without_hash
from sqlgate.audit.keys import KeyRing, signed_payload
from sqlgate.audit.storage import Entry, Head

Kind = Literal[
    "altered", "deleted", "inserted", "reordered", "truncated", "bad_signature", "unreadable", "dropped", "unproven"
]
EXIT_CODES: dict[str, int] = {
    "intact": 0,
    "altered": 4,
    "deleted": 5,
    "inserted": 6,
    "reordered": 7,
    "truncated": 8,
    "bad_signature": 9,
    "unreadable": 10,
    "dropped": 11,
    "unproven": 12,
}
Keys = KeyRing | Ed25519PublicKey | Sequence[Ed25519PublicKey]


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
    anchor_seq: int | None = None
    anchor_found: bool = False
    dropped: int = 0
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
    strict: bool = False
    unended: list[str] = field(default_factory=list)
    """Sessions with a ``session.start`` and no ``session.end``: still open, or their gateway was killed."""

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
            "strict": self.strict,
            "records": sum(c.records for c in self.chains.values()),
            "dropped": sum(c.dropped for c in self.chains.values()),
            "chains": [
                {
                    "chain": c.chain,
                    "records": c.records,
                    "first_seq": c.first_seq,
                    "last_seq": c.last_seq,
                    "checkpoints": c.checkpoints,
                    "proven_seq": c.proven_seq,
                    "head_seq": c.head_seq,
                    "anchor_seq": c.anchor_seq,
                    "unproven": c.unproven,
                    "dropped": c.dropped,
                }
                for c in self.chains.values()
            ],
            "findings": [
                {"kind": f.kind, "chain": f.chain, "seq": f.seq, "position": f.position, "message": f.message}
                for f in self.findings
            ],
            "unended_sessions": self.unended,
        }


def verify(  # noqa: PLR0913 - keyword options, each with a default
    entries: Iterable[Entry],
    keys: Keys,
    *,
    heads: Mapping[str, Head] | None = None,
    partial: bool = False,
    anchors: Iterable[Head] = (),
    strict: bool = False,
) -> VerifyReport:
    """Check ``entries`` (records of any chains, each chain in stored order) against the trusted ``keys``.

    ``heads``: the signed head of every chain (from the store); ``None`` for an
    exported file, whose tail after the last checkpoint is then only counted.
    ``partial``: chains may start after seq 1 (an export made with ``--since``).
    ``anchors``: heads exported earlier, which the log must still contain.
    ``strict``: dropped records and an unproven tail are problems too.
    """
    checker = Verifier(keys, partial=partial, anchors=anchors, strict=strict)
    for entry in entries:
        checker.add(entry)
    return checker.finish(heads)


def head_signed(head: Head, keys: KeyRing) -> bool:
    """True when a trusted key signed ``head`` (its chain list, when it has one, naming its own chain)."""
    if head.chains is not None and head.chain not in head.chains:
        return False
    payload = signed_payload(head.chain, head.seq, head.hash, head.chains)
    return keys.verify(head.signature, payload, head.key_id)


def key_ring(keys: Keys) -> KeyRing:
    """``keys`` as a :class:`KeyRing` (one key or several given by the caller count as pinned)."""
    if isinstance(keys, KeyRing):
        return keys
    if isinstance(keys, Ed25519PublicKey):
        return KeyRing([keys], pinned=True)
    return KeyRing(keys, pinned=True)


class Verifier:
    """Incremental form of :func:`verify`: ``add`` entries as they are read, then ``finish``."""

    def __init__(self, keys: Keys, *, partial: bool, anchors: Iterable[Head] = (), strict: bool = False) -> None:
        self.keys = key_ring(keys)
        self.partial = partial
        self.strict = strict
        self.chains: dict[str, ChainReport] = {}
        self.findings: list[Finding] = []
        self.named: dict[str, str] = {}  # chain id -> the first verified signature that names it
        self.anchors: dict[str, Head] = {}
        self.open_sessions: dict[str, None] = {}  # session ids started and not (yet) ended, in order
        for anchor in anchors:
            self._add_anchor(anchor)

    def _state(self, chain: str) -> ChainReport:
        state = self.chains.get(chain)
        if state is None:
            state = self.chains[chain] = ChainReport(chain)
        return state

    def _add_anchor(self, anchor: Head) -> None:
        state = self._state(anchor.chain)
        if anchor.chain in self.anchors:
            raise ValueError(f"two exported heads for chain {anchor.chain}")
        self.anchors[anchor.chain] = anchor
        state.anchor_seq = anchor.seq
        if not self._head_signed(anchor):
            self._fail(
                state,
                "bad_signature",
                anchor.seq,
                None,
                f"the exported head (seq {anchor.seq}) is not signed by a trusted key{self._signer(anchor.key_id)}",
            )
            return
        self._name(anchor.chains, f"the exported head of chain {anchor.chain}")

    def add(self, entry: Entry) -> None:
        """Check the next stored record."""
        fields = _fields(entry.body)
        chain = fields[0] if fields else entry.chain or "?"
        state = self._state(chain)
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
                if not self._at_anchor(state, seq - 1, prev_hash, entry):
                    return
        if not self._in_sequence(state, seq, prev_hash, entry):
            return
        if record_type == CHECKPOINT and not self._checkpoint(state, entry, seq, prev_hash):
            return
        if record_type in _SESSION_TYPES:
            self._session(record_type, entry.body)
        state.last_seq, state.last_hash = seq, digest
        self._at_anchor(state, seq, digest, entry)

    def _session(self, record_type: str, body: str) -> None:
        """Track session.start and session.end by the record's own session_id (the last one in its sorted keys)."""
        at = body.rfind(_SESSION_ID)
        if at < 0:
            return
        start = at + len(_SESSION_ID)
        session_id = body[start : body.find('"', start)]
        if record_type == "session.start":
            self.open_sessions[session_id] = None
        else:
            self.open_sessions.pop(session_id, None)

    def _at_anchor(self, state: ChainReport, seq: int, digest: str, entry: Entry) -> bool:
        """At the exported head's seq: the record must be the one it signed."""
        anchor = self.anchors.get(state.chain)
        if anchor is None or anchor.seq != seq:
            return True
        if digest != anchor.hash:
            self._fail(
                state,
                "altered",
                seq,
                entry,
                f"seq {seq} is not the record the exported head signed: the log was rewritten after it was exported",
            )
            return False
        state.anchor_found = True
        state.proven_seq = max(state.proven_seq, seq)
        return True

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
        chains = _chain_list(signed.get("chains")) if isinstance(signed, dict) and "chains" in signed else None
        expected: dict[str, Any] = {"chain": state.chain, "seq": seq - 1, "hash": prev_hash}
        if chains is not None:
            expected["chains"] = list(chains)
        payload = signed_payload(state.chain, seq - 1, prev_hash, chains)
        if signed != expected or not self.keys.verify(signature, payload, data.get("key_id")):
            why = self._signer(data.get("key_id"))
            self._fail(state, "bad_signature", seq, entry, f"checkpoint seq {seq}: the signature does not verify{why}")
            return False
        state.checkpoints += 1
        state.proven_seq = seq  # the checkpoint itself carries the signature: only deleting it goes unseen
        state.dropped += _dropped(data)
        self._name(chains, f"checkpoint seq {seq} of chain {state.chain}")
        return True

    def _signer(self, signer: object) -> str:
        """Why a signature failed, when the signer it names is not a trusted key."""
        trusted = [k.key_id for k in self.keys.keys]
        if signer in trusted:
            return ""
        known = ", ".join(trusted) or "none"
        return f" (signed by key {signer}, which is not trusted; trusted: {known})"

    def _head_signed(self, head: Head) -> bool:
        return head_signed(head, self.keys)

    def _name(self, chains: Sequence[str] | None, who: str) -> None:
        for chain in chains or ():
            self.named.setdefault(chain, who)

    def unreadable(self, position: int, message: str) -> None:
        """Note a stored item that is not a record at all (a broken line of a file)."""
        finding = Finding("unreadable", "?", None, position, message)
        self.findings.append(finding)

    def finish(self, heads: Mapping[str, Head] | None) -> VerifyReport:
        """The report, after comparing each chain's end with its signed head (when ``heads`` is given).

        Then with the exported heads (``anchors``), then that every chain a verified
        signature names is present, then (``strict``) dropped records and unproven tails.
        """
        for state in self.chains.values():
            if state.finding is None and state.gap is not None:
                first, last, position = state.gap
                count = last - first + 1
                message = f"{count} record(s) missing from seq {first}" if count > 1 else f"seq {first} is missing"
                state.finding = Finding("deleted", state.chain, first, position, message)
                self.findings.append(state.finding)
        if heads is not None:
            self._against_heads(heads)
        for chain in sorted(self.anchors):
            self._against_anchor(self.chains[chain], self.anchors[chain])
        if not self.partial:
            self._named_chains_present()
        if self.strict:
            for state in self.chains.values():
                self._strict(state)
        return VerifyReport(self.chains, self.findings, strict=self.strict, unended=list(self.open_sessions))

    def _against_heads(self, heads: Mapping[str, Head]) -> None:
        for chain in sorted(set(heads) - set(self.chains)):
            self.chains[chain] = ChainReport(chain)
        for state in self.chains.values():
            known = state.records or state.chain in heads  # not: only an exported head names it
            if state.finding is None and known:
                self._against_head(state, heads.get(state.chain))

    def _against_anchor(self, state: ChainReport, anchor: Head) -> None:
        """The exported head's record must have been seen (its hash was compared when it was)."""
        if state.finding is not None or state.anchor_found:
            return
        if state.records == 0:
            message = f"the chain has no records, but the exported head signed seq {anchor.seq}"
            self._fail(state, "truncated", 1, None, message)
        elif state.first_seq is not None and state.first_seq > anchor.seq + 1:
            message = f"the records start at seq {state.first_seq}, after seq {anchor.seq} the exported head signed"
            self._fail(state, "deleted", anchor.seq, None, message)
        else:
            message = f"the log ends at seq {state.last_seq}, before seq {anchor.seq} the exported head signed"
            self._fail(state, "truncated", state.last_seq + 1, None, message)

    def _named_chains_present(self) -> None:
        """Every chain a verified head or checkpoint names must still be there."""
        for chain in sorted(set(self.named) - set(self.chains)):
            state = self._state(chain)
            message = f"the chain is gone (no records, no head), but {self.named[chain]} names it"
            self._fail(state, "deleted", None, None, message)

    def _strict(self, state: ChainReport) -> None:
        if state.finding is not None:
            return
        if state.dropped:
            message = f"{state.dropped} record(s) were dropped before they were written (its checkpoints say so)"
            self._fail(state, "dropped", None, None, message)
        elif state.unproven:
            message = f"the last {state.unproven} record(s) follow the last checkpoint and no signed head covers them"
            self._fail(state, "unproven", state.proven_seq + 1, None, message)

    def _against_head(self, state: ChainReport, head: Head | None) -> None:
        if head is None:
            kind: Kind = "truncated" if state.checkpoints else "inserted"
            self._fail(state, kind, None, None, "the chain has no signed head in the store")
            return
        state.head_seq = head.seq
        if not self._head_signed(head):
            message = f"the chain's head signature does not verify{self._signer(head.key_id)}"
            self._fail(state, "bad_signature", head.seq, None, message)
        elif state.last_seq < head.seq:
            missing = head.seq - state.last_seq
            self._fail(state, "truncated", state.last_seq + 1, None, f"the last {missing} record(s) are missing")
        elif state.last_seq > head.seq:
            self._fail(state, "inserted", head.seq + 1, None, "records beyond the signed head")
        elif state.last_hash != head.hash:
            self._fail(state, "altered", head.seq, None, "the last record is not the one the head signed")
        else:
            state.proven_seq = state.last_seq
            self._name(head.chains, f"the signed head of chain {head.chain}")


def verify_lines(
    lines: Iterable[str], keys: Keys, *, partial: bool = False, anchors: Iterable[Head] = (), strict: bool = False
) -> VerifyReport:
    """Verify an exported JSONL file (records with their ``hash``), offline; positions are line numbers."""
    checker = Verifier(keys, partial=partial, anchors=anchors, strict=strict)
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


_SESSION_TYPES = frozenset({"session.start", "session.end"})
_SESSION_ID = '"session_id":"'


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


def _chain_list(value: object) -> tuple[str, ...] | None:
    """The signed chain ids, or None when they are not a list of text (the signature check then fails)."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def _dropped(data: Mapping[str, Any]) -> int:
    """The records a checkpoint says were lost since the previous one."""
    value = data.get("dropped", 0)
    return value if type(value) is int and value > 0 else 0
