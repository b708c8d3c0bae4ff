"""The audit tables: every record of every chain, and the signed head of each chain.

``audit_records.id`` is the insertion order (the verifier reads each chain in
that order, so swapped rows show up); ``body`` is the exact canonical JSON the
``hash`` covers; the other columns are an index for search, cross-checked
against ``body`` by the verifier. ``audit_heads`` holds, per chain, the newest
(seq, hash) and its signature, rewritten in the transaction of every batch:
a tail cut from ``audit_records`` no longer reaches the signed head. Its
``chains`` (JSON list, signed with the head) names every chain the state
database held at that commit, so a chain deleted with its head is missed by
the others' heads; NULL in heads written before that existed.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from sqlgate.store.tables import metadata

_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

audit_records = Table(
    "audit_records",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("chain", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("time", String(32), nullable=False),
    Column("type", String(32), nullable=False),
    Column("subject", Text),
    Column("issuer", Text),
    Column("database", String(128)),
    Column("session_id", String(128)),
    Column("outcome", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_audit_records_chain_seq", "chain", "seq", unique=True),
    Index("ix_audit_records_time", "time"),
    Index("ix_audit_records_subject", "subject"),
    Index("ix_audit_records_database", "database"),
    Index("ix_audit_records_type", "type"),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("chain", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("time", String(32), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", Text, nullable=False),
    Column("chains", Text, nullable=True),
)
