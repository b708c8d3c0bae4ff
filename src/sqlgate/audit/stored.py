"""Verify the log in the state database with the keys the settings trust: one routine for the CLI and the console.

``sqlgate audit verify``, ``sqlgate doctor`` and the console's chain badge all call
:func:`verify_stored` with :func:`settings_trust`, so they agree on what "intact" means.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlgate.audit.keys import KeyRing, signing_key_path
from sqlgate.audit.storage import Head, chain_ids, entries, read_heads
from sqlgate.audit.trust import Trust, resolve_trust
from sqlgate.audit.verify import Verifier, VerifyReport
from sqlgate.config import Settings
from sqlgate.store import StateStore


def settings_trust(settings: Settings, pubkeys: Sequence[str] | None = None) -> Trust:
    """The keys to verify with: ``pubkeys`` (all of them), else ``audit.trusted_keys``, else the host's key."""
    host_key = signing_key_path(settings.data_dir, settings.audit.signing_key_file)
    return resolve_trust(list(pubkeys or settings.audit.trusted_keys), host_key)


async def verify_stored(
    store: StateStore, keys: KeyRing, anchors: Sequence[Head] = (), *, strict: bool = False
) -> VerifyReport:
    """Check every chain in ``store`` against its signed head (and ``anchors``, heads kept elsewhere)."""
    verifier = Verifier(keys, partial=False, anchors=anchors, strict=strict)
    heads = await read_heads(store)
    for chain in await chain_ids(store):
        async for entry in entries(store, chain, page=20_000):
            verifier.add(entry)
    return verifier.finish(heads)
