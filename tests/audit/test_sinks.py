"""Extra sinks: the JSONL file rotates by size, stdout gets lines, a failing sink never stops the log."""

from __future__ import annotations

import io
import json

from sqlgate.audit.chain import Chainer
from sqlgate.audit.pipeline import Pipeline
from sqlgate.audit.sinks import JsonlSink, StdoutSink
from sqlgate.audit.verify import verify_lines
from tests.audit.conftest import security, statement


def chained(count, chain="r1"):
    chainer, pipeline = Chainer(chain), Pipeline()
    return [chainer(pipeline.prepare(statement(n))) for n in range(count)]


async def test_jsonl_rotates_by_size_and_keeps_backups(tmp_path):
    path = tmp_path / "audit.jsonl"
    sink = JsonlSink(path, max_bytes=4096, backups=2)
    records = chained(40)
    for start in range(0, 40, 4):
        await sink.write(records[start : start + 4])
    await sink.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    assert (path.stat().st_mode & 0o777) == 0o600
    newest = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert newest[-1] == 40
    older = [json.loads(line)["seq"] for line in (tmp_path / "audit.jsonl.1").read_text().splitlines()]
    assert older[-1] + 1 == newest[0]  # no record lost or repeated across the rotation


async def test_rotated_pieces_verify_as_partial_files(tmp_path, signer):
    path = tmp_path / "audit.jsonl"
    sink = JsonlSink(path, max_bytes=4096, backups=5)
    chainer, pipeline = Chainer("r1"), Pipeline()
    for n in range(30):
        records = [chainer(pipeline.prepare(statement(n)))]
        if n % 5 == 4:
            records.append(chainer.checkpoint(signer))
        await sink.write(records)
    await sink.close()
    for piece in tmp_path.iterdir():
        assert verify_lines(piece.read_text().splitlines(), signer.public_key, partial=True).ok, piece


async def test_stdout_sink_writes_lines():
    stream = io.StringIO()
    sink = StdoutSink(stream)
    records = chained(3)
    await sink.write(records)
    await sink.close()
    assert stream.getvalue().splitlines() == [r.line() for r in records]


class BrokenSink:
    async def write(self, records):
        del records
        raise OSError("disk full")

    async def close(self):
        raise OSError("disk full")


async def test_failing_sink_does_not_stop_the_log(sqlite_store, make_log, caplog):
    log = make_log(sqlite_store, sinks=[BrokenSink()])
    async with log:
        await log.record(security(1))
    assert log.written >= 1
    assert "disk full" in caplog.text
