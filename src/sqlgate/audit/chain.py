"""The hash chain: one sequencer per replica turns records into linked, hashed rows.

Every record carries ``chain`` (the replica's chain id), ``seq`` (1, 2, ...),
``prev_hash`` (the previous record's hash; 64 zeros for the first) and
``hash`` = SHA-256 of the canonical JSON (RFC 8785) of the record without
``hash``. That JSON is stored as it is (``body``), so verification hashes the
stored bytes and never needs to re-canonicalise. A checkpoint is a record of
type ``audit.checkpoint`` whose ``data.signed`` names the record before it
(chain, seq, hash) and every chain id the state database knew (``chains``),
and whose ``data.signature`` is the Ed25519 signature of exactly that
(checkpoints written before ``chains`` existed sign the triple alone).
``data.dropped`` counts records lost since the previous checkpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlgate.audit.canonical import CanonicalDict, canonical_bytes, encode_plain, format_time, jsonable
from sqlgate.audit.events import next_event_id
from sqlgate.audit.keys import Signer

GENESIS = "0" * 64
CHECKPOINT = "audit.checkpoint"


@dataclass(slots=True)
class ChainedRecord:
    """A record ready for the sinks: its index columns, the hashed ``body`` and the ``hash``."""

    chain: str
    seq: int
    prev_hash: str
    hash: str
    body: str
    fields: dict[str, Any] = field(repr=False)

    def line(self) -> str:
        """The record with its hash as one canonical JSON line (for files, stdout and export)."""
        return with_hash(self.body, self.hash)

    def as_dict(self) -> dict[str, Any]:
        """The record with its hash, as plain JSON values."""
        return jsonable({**self.fields, "hash": self.hash})  # type: ignore[no-any-return]


class Chainer:
    """Assigns ``seq`` and ``prev_hash`` and computes ``hash``; the one place records are ordered."""

    def __init__(self, chain_id: str, seq: int = 0, head_hash: str = GENESIS) -> None:
        self.chain_id = chain_id
        self.seq = seq
        self.head_hash = head_hash

    def __call__(self, record: dict[str, Any]) -> ChainedRecord:
        """Link ``record`` after the current head and make it the head."""
        record["chain"] = self.chain_id
        record["seq"] = seq = self.seq + 1
        record["prev_hash"] = prev = self.head_hash
        raw = _encode(record)
        digest = hashlib.sha256(raw).hexdigest()
        self.seq, self.head_hash = seq, digest
        body = raw.decode("utf-8")
        return ChainedRecord(self.chain_id, seq, prev, digest, body, record)

    def checkpoint(self, signer: Signer, *, dropped: int = 0, chains: Sequence[str] = ()) -> ChainedRecord:
        """A signed checkpoint over the current head and the known ``chains``, linked as the next record."""
        known = known_chains(self.chain_id, chains)
        signed = {"chain": self.chain_id, "seq": self.seq, "hash": self.head_hash, "chains": known}
        data: dict[str, Any] = {
            "signed": signed,
            "signature": signer.sign(self.chain_id, self.seq, self.head_hash, known),
            "key_id": signer.key_id,
        }
        if dropped:
            data["dropped"] = dropped
        return self(new_record(CHECKPOINT, format_time(datetime.now(UTC)), data=data))

    def mark(self) -> tuple[int, str]:
        """The head now, to :meth:`rollback` to if a batch is not stored."""
        return self.seq, self.head_hash

    def rollback(self, mark: tuple[int, str]) -> None:
        """Forget every record chained since ``mark``."""
        self.seq, self.head_hash = mark


def known_chains(chain_id: str, chains: Iterable[str]) -> list[str]:
    """The sorted, distinct chain ids a head or checkpoint signs: ``chains`` and ``chain_id`` itself."""
    return sorted({chain_id, *chains})


class _Who(Protocol):
    """Who a record is about: a :class:`~sqlgate.identity.principal.Principal` or a ``PrincipalRef``."""

    @property
    def subject(self) -> str: ...
    @property
    def issuer(self) -> str: ...
    @property
    def groups(self) -> Sequence[str]: ...


def principal_record(principal: _Who) -> dict[str, Any]:
    """``principal`` as a record's ``principal`` member (what :class:`~sqlgate.audit.events.PrincipalRef` holds)."""
    return {"groups": list(principal.groups), "issuer": principal.issuer, "subject": principal.subject}


# Every record has these members, in canonical (sorted) order: the encoder need not sort them.
RECORD_KEYS = (
    "chain",
    "data",
    "database",
    "db_login",
    "id",
    "outcome",
    "prev_hash",
    "principal",
    "reason",
    "seq",
    "session_id",
    "source",
    "time",
    "trace_id",
    "type",
)


def new_record(record_type: str, time: str, **fields: Any) -> dict[str, Any]:
    """A record dict with every field present (``None`` where unset), in one shape for every type."""
    record: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    record["data"] = {}
    record["outcome"] = "info"
    record["time"] = time
    record["type"] = record_type
    record.update(fields)
    if record["id"] is None:
        record["id"] = next_event_id()
    return record


_TEXT_KEYS = tuple(key for key in RECORD_KEYS if key not in ("data", "principal", "seq"))
_PRINCIPAL_KEYS = ["groups", "issuer", "subject"]


def _encode(record: dict[str, Any]) -> bytes:
    """Canonical bytes of a record: at once when it has the usual shape and redaction made its data canonical."""
    if type(record["data"]) is CanonicalDict and _usual_shape(record):
        raw = encode_plain(record)
        if raw is not None:
            return raw
    return canonical_bytes(record)


def _usual_shape(record: dict[str, Any]) -> bool:
    """True when ``record`` has exactly the record keys, in order, with text (or null) where text belongs."""
    if tuple(record) != RECORD_KEYS or type(record["seq"]) is not int:
        return False
    for key in _TEXT_KEYS:
        value = record[key]
        if value is not None and type(value) is not str:
            return False
    principal = record["principal"]
    if principal is None:
        return True
    return (
        type(principal) is dict
        and list(principal) == _PRINCIPAL_KEYS
        and type(principal["issuer"]) is str
        and type(principal["subject"]) is str
        and type(principal["groups"]) is list
        and all(type(group) is str for group in principal["groups"])
    )


def with_hash(body: str, record_hash: str) -> str:
    """The canonical JSON of a record *with* its hash, from its stored ``body`` (which has none).

    ``hash`` sorts between ``db_login`` and ``id``; the top-level ``id`` member is
    the last ``,"id":"`` of the body (only fixed-shape members follow it).
    """
    at = body.rindex(',"id":"')
    return f'{body[:at]},"hash":"{record_hash}"{body[at:]}'


def without_hash(line: str) -> tuple[str, str]:
    """(body, hash) of a line made by :func:`with_hash`; ValueError when it has no hash member."""
    at = line.rindex(',"hash":"')
    end = at + 9 + 64
    if line[end : end + 1] != '"':
        raise ValueError("the hash member is not 64 characters long")
    return line[:at] + line[end + 1 :], line[at + 9 : end]
