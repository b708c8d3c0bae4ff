"""kill -9 under load: the chain still verifies and every acknowledged security event is stored."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from sqlgate.audit.storage import chain_ids, entries, read_heads
from sqlgate.audit.verify import Verifier
from sqlgate.store import StateStore

ROOT = Path(__file__).resolve().parents[2]


async def read_back(url, public_key):
    store = await StateStore.open(url)
    try:
        verifier, bodies = Verifier(public_key, partial=False), []
        for chain in await chain_ids(store):
            async for entry in entries(store, chain):
                verifier.add(entry)
                bodies.append(entry.body)
        return verifier.finish(await read_heads(store)), "\n".join(bodies)
    finally:
        await store.close()


def test_kill_9_under_load(tmp_path, signer):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    key = tmp_path / "key.pem"
    key.write_bytes(
        signer._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)
    acked = []
    with subprocess.Popen(
        [sys.executable, "-m", "tests.audit.crash_writer", url, str(key)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as child:
        try:
            assert child.stdout is not None
            for line in child.stdout:
                acked.append(line.split()[1])
                if len(acked) >= 100:
                    break
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            stderr = child.stderr.read() if child.stderr else ""
    assert len(acked) >= 100, stderr
    assert child.returncode == -signal.SIGKILL
    report, bodies = asyncio.run(read_back(url, signer.public_key))
    assert report.ok, report.findings
    print(f"{len(acked)} acknowledged, {report.chains['crash'].records} records stored")
    assert report.chains["crash"].records > len(acked)  # statements were flowing too
    missing = [event_id for event_id in acked if event_id not in bodies]
    assert missing == []
