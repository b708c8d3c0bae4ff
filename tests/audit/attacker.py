"""What an attacker with write access to the gateway host does to the stored log, for the tests.

Each helper rewrites the state database the way someone holding the host's
signing key file (or replacing it) would: records, checkpoints and heads all
consistent, so that `sqlgate audit verify` alone finds nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select

from sqlgate.audit.canonical import format_time
from sqlgate.audit.chain import CHECKPOINT, Chainer, known_chains
from sqlgate.audit.keys import Signer
from sqlgate.audit.storage import Head, head_values, row_of
from sqlgate.audit.tables import audit_heads, audit_records
from tests.audit.conftest import tamper


def rechain(config, signer: Signer, *, keep=None, edit=None):
    """Re-chain every stored record and re-sign with ``signer``.

    ``keep(chain, seq)`` selects the records kept; ``edit(record)`` may change each one first.
    """

    async def run(conn):
        rows = (await conn.execute(select(audit_records).order_by(audit_records.c.id))).all()
        chains = sorted({row.chain for row in rows})
        await conn.execute(delete(audit_records))
        await conn.execute(delete(audit_heads))
        chainers: dict[str, Chainer] = {}
        for row in rows:
            if keep is not None and not keep(row.chain, row.seq):
                continue
            chainer = chainers.setdefault(row.chain, Chainer(row.chain))
            record = json.loads(row.body)
            if record["type"] == CHECKPOINT:
                dropped = record["data"].get("dropped", 0)
                chained = chainer.checkpoint(signer, dropped=dropped, chains=chains)
            else:
                chained = chainer(edit(record) if edit is not None else record)
            await conn.execute(insert(audit_records).values(**row_of(chained)))
        for chain, chainer in chainers.items():
            head = sign_head(signer, chainer, chains)
            await conn.execute(insert(audit_heads).values(chain=chain, **head_values(head)))

    tamper(config, run)


def sign_head(signer: Signer, chainer: Chainer, chains) -> Head:
    """The head of ``chainer``, signed the way the gateway signs it."""
    listed = known_chains(chainer.chain_id, chains)
    signature = signer.sign(chainer.chain_id, chainer.seq, chainer.head_hash, listed)
    now = format_time(datetime.now(UTC))
    return Head(chainer.chain_id, chainer.seq, chainer.head_hash, now, signer.key_id, signature, tuple(listed))


def replace_host_key(path, key_file):
    """Put the private key in ``key_file`` where the gateway keeps its signing key."""
    path.write_bytes(key_file.read_bytes())
    path.chmod(0o600)


def wipe(config):
    """Delete every record and every head."""
    tamper(config, delete(audit_records), delete(audit_heads))


def cut(config, signer: Signer, chain: str, last_seq: int):
    """Delete the records of ``chain`` after ``last_seq`` and sign a head that ends there."""

    async def run(conn):
        cols = audit_records.c
        await conn.execute(delete(audit_records).where((cols.chain == chain) & (cols.seq > last_seq)))
        last = (await conn.execute(select(cols.hash).where((cols.chain == chain) & (cols.seq == last_seq)))).one()
        chains = (await conn.execute(select(audit_heads.c.chain))).scalars().all()
        head = sign_head(signer, Chainer(chain, last_seq, last.hash), chains)
        await conn.execute(audit_heads.update().where(audit_heads.c.chain == chain).values(**head_values(head)))

    tamper(config, run)
