"""The audit log in a writer process of its own, and the gateway's handle on it.

Redacting, chaining, signing and storing every statement record is CPU work that
an event loop relaying traffic can hardly spare, and a writer thread competes
with it for the interpreter lock. With ``audit.writer: process``, ``sqlgate
serve`` runs its :class:`~sqlgate.audit.log.AuditLog` in a child process
(:mod:`sqlgate.audit.process_main`), and the proxy and the API hand events to
:class:`AuditProcess`, which has the log's interface: ``record`` (returns once
committed), ``submit`` and ``enqueue`` (queued, bounded by ``audit.queue_size``
with the same ``block``/``drop`` behaviour), ``flush`` and ``aclose``.

Per event the loop only fills in what belongs to the caller's context (the trace
id) and appends the record to an outbox; a statement handed over as a row
(:mod:`sqlgate.audit.rows`) goes in as that tuple, and its session's context once,
and the child expands it. Once per loop turn the outbox goes to the child as one
:mod:`marshal` message on its stdin. The child runs the log as
it would run in-process (one chain, one order: the order of hand-over), and
answers with ``settled`` (statement records written, freeing queue room) and
``done`` (a waited-for record or flush committed, or why not). Records the
marshal format cannot carry are redacted here first, which turns them into plain
JSON values. Both ends are sqlgate's own code, over a pipe only they hold.

If the child dies, every waiting caller gets :class:`~sqlgate.errors.AuditError`
(their actions must not go on), the statement records it had not settled are
counted as dropped (reported by the next checkpoint of the restarted child, which
resumes the chain from the state database), and a new child is started with
backoff. If the gateway dies, the child sees its input end, writes what it has
and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import marshal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, Self

from sqlgate.audit.canonical import jsonable
from sqlgate.audit.events import AuditEvent
from sqlgate.audit.handover import BoundedHandOver, is_security
from sqlgate.audit.pipeline import Pipeline, enrich
from sqlgate.audit.rows import StatementRow, expand
from sqlgate.config import Settings
from sqlgate.errors import AuditError

log = logging.getLogger("sqlgate.audit.log")

Record = dict[str, Any]
Message = tuple[Any, ...]
_START_TIMEOUT = 60.0  # the child imports sqlgate and resumes the chain from the state database
_EXIT_TIMEOUT = 60.0  # the child writes what is queued and a final checkpoint before it exits
_RESTART_MAX = 5.0
_BARRIER = None  # an outbox entry without a record: a flush
CONTEXT = -1  # an outbox entry's tag (where a waiter's id goes): (key, fields), a context opened
FORGET = -2  # the tag of a context closed: its key
_PIPE_SIZE = 1 << 20


def frame(message: Any) -> bytes:
    """``message`` as one framed message: a 4-byte big-endian length and its marshal body."""
    body = marshal.dumps(message)
    return len(body).to_bytes(4, "big") + body


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next framed message, or None at end of input."""
    try:
        size = int.from_bytes(await reader.readexactly(4), "big")
        return marshal.loads(await reader.readexactly(size))  # noqa: S302 - our own child's pipe
    except asyncio.IncompleteReadError:
        return None


def take_frames(pending: bytearray) -> list[Any]:
    """The whole messages at the start of ``pending``, removed from it (a partial one stays)."""
    messages = []
    start, end = 0, len(pending)
    view = memoryview(pending)
    while end - start >= 4:
        size = int.from_bytes(view[start : start + 4], "big")
        if end - start - 4 < size:
            break
        messages.append(marshal.loads(view[start + 4 : start + 4 + size]))  # noqa: S302 - our own child's pipe
        start += 4 + size
    view.release()
    del pending[:start]
    return messages


class _PipeWriter(asyncio.Protocol):
    """The child's stdin as the loop writes it: ``drained`` runs whenever nothing waits in the gateway's buffer."""

    def __init__(self) -> None:
        self.drained: Callable[[], None] | None = None

    def resume_writing(self) -> None:
        """The transport's buffer is empty again (the write limits are 0): every byte is in the pipe."""
        if self.drained is not None:
            self.drained()


def _widen(pipe: Any) -> None:
    """Make the pipe hold 1 MiB (Linux), so the gateway's own buffer is rarely used."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


class _Child:
    """One writer process, started with ``python -m sqlgate.audit.process_main``.

    Started with :class:`subprocess.Popen` and its two pipes attached to the loop as
    pipe transports, which :meth:`stop` closes: a pipe left open keeps a closing
    uvloop loop waiting (or failing with EBUSY).
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        writer: asyncio.WriteTransport,
        reader: asyncio.ReadTransport,
        answers: asyncio.StreamReader,
        pipe: _PipeWriter,
    ) -> None:
        self.popen = popen
        self.writer = writer
        self.pipe = pipe
        self.reader = reader  # stays open after end of input (the stream protocol keeps it): stop() closes it
        self.answers = answers

    @classmethod
    async def spawn(cls) -> _Child:
        """Start a child (its stderr is the gateway's)."""
        popen = subprocess.Popen(  # noqa: ASYNC220 - our own module; fork and exec take milliseconds
            [sys.executable, "-m", "sqlgate.audit.process_main"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert popen.stdin is not None
        assert popen.stdout is not None
        loop = asyncio.get_running_loop()
        answers = asyncio.StreamReader(limit=2**31)
        _widen(popen.stdin)
        try:
            writer, pipe = await loop.connect_write_pipe(_PipeWriter, popen.stdin)
            writer.set_write_buffer_limits(high=0)  # pause_writing on any leftover, resume_writing once it is out
            reader, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(answers), popen.stdout)
        except BaseException:
            popen.kill()
            popen.wait()
            raise
        return cls(popen, writer, reader, answers, pipe)

    @property
    def in_pipe(self) -> bool:
        """True when every byte written so far has left the gateway (the kernel's pipe holds it for the child)."""
        return self.writer.get_write_buffer_size() == 0

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status, None while it runs (or has not been reaped)."""
        return self.popen.poll()

    def write(self, data: bytes) -> None:
        """Send ``data`` to the child's stdin (dropped once that is closed)."""
        if not self.writer.is_closing():
            self.writer.write(data)

    def end_input(self) -> None:
        """Close the child's stdin: it writes what it holds and exits."""
        self.writer.close()

    async def answer(self) -> Any:
        """The child's next message, or None once its stdout is closed."""
        return await read_frame(self.answers)

    async def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the child to exit (and reap it); True when it did."""
        deadline = time.monotonic() + seconds
        while self.popen.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self, grace: float) -> None:
        """Wait for the child to exit (killing it after ``grace`` seconds); close the pipes."""
        if not await self.wait(grace):
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            await self.wait(10)
        self.writer.close()  # the transports close the pipes' files
        self.reader.close()


class AuditProcess(BoundedHandOver):
    """The gateway's handle on its audit log, which runs in a writer process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue_size = settings.audit.queue_size
        self.on_full: Literal["block", "drop"] = settings.audit.on_full
        self.chain_id: str | None = None
        self.dropped = 0
        self.written = 0  # statement records the child has settled
        self._context = Pipeline((enrich,))  # what must run in the caller's context; the child redacts
        self._redact = Pipeline()
        self._queued = 0  # statement records handed over and not yet settled by the child
        self._room = asyncio.Event()
        self._room.set()
        self._outbox: list[tuple[int, Any]] = []  # (waiter's id, record or barrier), (0, row), or a context's entry
        self._contexts: dict[int, Record] = {}
        self._closed: dict[int, Record] = {}  # contexts closed whose FORGET entry has not left yet
        self._shipping = False
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._next_wait = 0
        self._lost_unreported = 0
        self._drop_logged_at = 0.0
        self._child: _Child | None = None
        self._reader: asyncio.Task[None] | None = None
        self._restarter: asyncio.Task[None] | None = None
        self._closing = False
        self._started = False
        self._after_handover: list[Callable[[], None]] = []  # run once what is handed over is in the pipe
        self.durable_handover = True
        """Records handed over reach the child's pipe before :meth:`after_handover` callbacks run."""

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Start the writer process; it resumes the chain (AuditError, with the child's reason, if it cannot)."""
        if self._started:
            return
        await self._spawn()
        self._started = True

    async def aclose(self) -> None:
        """Hand over what is queued, let the child write it and a final checkpoint, and wait for it to exit."""
        if self._closing:
            return
        self._closing = True
        self._room.set()
        if self._restarter is not None:
            self._restarter.cancel()
        child = self._child
        if child is None:  # never started, or closing while a restart was under way
            unsent = self._unsent_statements()
            if unsent:
                log.error("the audit log closed without a writer process: %d statement records lost", unsent)
            self._fail_waiters(AuditError("the audit log is closed"))
            return
        self._ship()
        child.write(frame(("close",)))
        child.end_input()
        if not await child.wait(_EXIT_TIMEOUT):
            log.error("the audit writer process did not finish in %.0f s; killing it", _EXIT_TIMEOUT)
        await child.stop(0)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        self._fail_waiters(AuditError("the audit log closed before this record was committed"))
        waiting, self._after_handover = self._after_handover, []
        for then in waiting:
            then()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    @property
    def pid(self) -> int | None:
        """The writer process's id while it runs."""
        child = self._child
        return child.pid if child is not None and child.returncode is None else None

    # -- handing events over ----------------------------------------------

    async def record(self, event: AuditEvent | Record) -> None:
        """Record ``event`` and return once it is committed (raises AuditError if it cannot be)."""
        await asyncio.shield(self.record_nowait(event))

    def record_nowait(self, event: AuditEvent | Record) -> asyncio.Future[None]:
        """Hand ``event`` over as :meth:`record` does, now; the future its commit resolves (or fails)."""
        self._check_open()
        done = self._waiter()
        self._outbox.append((self._wait_id(done), self._in_context(event)))
        self._ship_soon()
        return done

    async def flush(self) -> None:
        """Wait until everything handed over so far is committed."""
        self._check_open()
        done = self._waiter()
        self._outbox.append((self._wait_id(done), _BARRIER))
        self._ship_soon()
        await asyncio.shield(done)

    def after_handover(self, then: Callable[[], None]) -> None:
        """Run ``then`` once every record handed over so far has left the gateway for the writer process.

        The proxy sends a statement's answer to its client this way: the record is in
        the pipe (which outlives the gateway: the child reads it to the end and writes
        it) before the client can see the statement acknowledged. Records of one loop
        turn go in one write (group commit); ``then`` runs in the same turn when the
        pipe takes them.
        """
        if self._closing or (not self._outbox and not self._shipping and self._in_pipe()):
            then()
            return
        self._after_handover.append(then)
        self._ship_soon()

    def _in_pipe(self) -> bool:
        child = self._child
        return child is not None and child.in_pipe

    def _handed_over(self) -> None:
        """Everything shipped is in the pipe: release what waited for it."""
        if self._outbox or self._shipping:
            return
        waiting, self._after_handover = self._after_handover, []
        for then in waiting:
            try:
                then()
            except Exception:
                log.exception("a callback after an audit hand-over failed")

    def _hand_over(self, event: AuditEvent | Record, *, counted: bool) -> None:
        if counted:
            self._queued += 1
        self._outbox.append((0, self._in_context(event)))
        self._ship_soon()

    def _hand_over_row(self, row: StatementRow) -> None:
        self._queued += 1
        self._outbox.append((0, row))
        self._ship_soon()

    def _context_opened(self, key: int, fields: Record) -> None:
        try:
            marshal.dumps(fields)
        except ValueError:
            fields = self._contexts[key] = jsonable(fields)
        self._outbox.append((CONTEXT, (key, fields)))
        self._ship_soon()

    def _context_closed(self, key: int, fields: Record) -> None:
        self._closed[key] = fields
        self._outbox.append((FORGET, key))
        self._ship_soon()

    def _in_context(self, event: AuditEvent | Record) -> Record:
        """The record of ``event`` with what only the caller's context knows (the child does the rest)."""
        if isinstance(event, AuditEvent):
            return self._context.prepare(event)
        return self._context.process(event)

    def _check_open(self) -> None:
        if self._closing:
            raise AuditError("the audit log is closed")
        if not self._started:
            raise AuditError("the audit log is not started (await start() first)")

    def _waiter(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    def _wait_id(self, done: asyncio.Future[None]) -> int:
        self._next_wait += 1
        self._waiters[self._next_wait] = done
        return self._next_wait

    def _count_dropped(self) -> None:
        self.dropped += 1
        self._lost_unreported += 1  # sent to the child with the next message: its next checkpoint reports it

    # -- to the child ------------------------------------------------------

    def _ship_soon(self) -> None:
        if not self._shipping:
            self._shipping = True
            asyncio.get_running_loop().call_soon(self._ship)

    def _ship(self) -> None:
        """Send the outbox (and any loss to report) to the child as one message."""
        self._shipping = False
        child = self._child
        if child is None:
            return  # a restart is under way; it sends the outbox
        messages = []
        if self._lost_unreported:
            messages.append(frame(("lost", self._lost_unreported)))
            self._lost_unreported = 0
        if self._outbox:
            outbox, self._outbox = self._outbox, []
            messages.append(self._events_frame(outbox))
            if self._closed:
                for tag, payload in outbox:
                    if tag == FORGET:
                        self._closed.pop(payload, None)
        if messages:
            child.write(b"".join(messages))
        if self._after_handover and child.in_pipe:
            self._handed_over()  # else the pipe's resume_writing does, once the rest is out

    def _events_frame(self, outbox: list[tuple[int, Any]]) -> bytes:
        try:
            return frame(("events", outbox))
        except ValueError:  # a value marshal cannot carry: redaction makes plain JSON of it
            return frame(("events", [entry for entry in map(self._portable, outbox) if entry is not None]))

    def _portable(self, entry: tuple[int, Any]) -> tuple[int, Any] | None:
        tag, payload = entry
        if payload is None or tag < 0:
            return entry  # a barrier, or a context (made portable when opened)
        if type(payload) is tuple:  # a row: send its whole record instead
            key = payload[0]
            payload = expand(self._contexts.get(key) or self._closed.get(key), payload)
        try:
            record = self._redact.process(payload)
            record["data"] = dict(record["data"]) if isinstance(record["data"], dict) else record["data"]
            marshal.dumps(record)
        except Exception as exc:  # e.g. nested past the recursion limit
            log.error("audit event %s could not be prepared: %s", payload.get("type"), type(exc).__name__)  # noqa: TRY400 - the traceback could show the unredacted event
            self._unsendable(tag, payload)
            return None
        return tag, record

    def _unsendable(self, wait_id: int, record: Record) -> None:
        if wait_id:
            self._answer(wait_id, f"audit event {record.get('type')} could not be prepared; see the log")
        elif not is_security(record):
            self._settle(1, written=False)
            self._drop()

    def _unsent_statements(self) -> int:
        """Statement records in the outbox: counted, and not yet with any child."""
        return sum(
            1
            for tag, payload in self._outbox
            if tag == 0 and payload is not None and (type(payload) is tuple or not is_security(payload))
        )

    # -- from the child ------------------------------------------------------

    async def _read(self, child: _Child) -> None:
        while (message := await child.answer()) is not None:
            kind = message[0]
            if kind == "settled":
                self._settle(message[1])
            elif kind == "done":
                self._answer(message[1], message[2])
        if child is self._child and not self._closing:
            await child.stop(5)  # its stdout closed: it is exiting, or hangs
            self._child_lost(child.returncode)

    def _settle(self, count: int, *, written: bool = True) -> None:
        if written:
            self.written += count
        self._queued -= count
        self._room.set()

    def _answer(self, wait_id: int, error: str | None) -> None:
        done = self._waiters.pop(wait_id, None)
        if done is None or done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(AuditError(error))

    def _fail_waiters(self, error: AuditError) -> None:
        waiters, self._waiters = self._waiters, {}
        for done in waiters.values():
            if not done.done():
                done.set_exception(error)

    def _child_lost(self, code: int | None) -> None:
        """The child died: fail its waiters, count what it had not written, start another."""
        self._child = None
        if self._closing:
            return
        unsent = self._unsent_statements()
        lost = self._queued - unsent
        log.critical(
            "the audit writer process stopped (exit status %s); %d statement records lost; restarting it", code, lost
        )
        self._fail_waiters(AuditError("the audit writer process stopped; see the log"))
        known = (*self._contexts.items(), *self._closed.items())
        contexts = [(CONTEXT, item) for item in known]  # the new child knows none of them
        self._outbox = contexts + [(tag, payload) for tag, payload in self._outbox if tag in (0, FORGET)]
        if lost > 0:
            self._settle(lost, written=False)
            self.dropped += lost
            self._lost_unreported += lost
        self._restarter = asyncio.ensure_future(self._restart())

    async def _restart(self) -> None:
        delay = 0.05
        while not self._closing:
            try:
                await self._spawn()
            except AuditError as exc:
                log.error("the audit writer process could not be restarted: %s", exc)  # noqa: TRY400 - the reason is the message
                self._fail_waiters(AuditError(f"the audit log is unavailable: {exc}"))
                await asyncio.sleep(delay)
                delay = min(_RESTART_MAX, delay * 2)
                continue
            self._ship()
            return

    async def _spawn(self) -> None:
        """Start a child, send it the settings, and wait until its log has resumed the chain."""
        child = await _Child.spawn()
        child.write(frame(self.settings.model_dump_json(include={"data_dir", "state", "audit", "log_level"})))
        try:
            reply = await asyncio.wait_for(child.answer(), _START_TIMEOUT)
        except TimeoutError:
            reply = ("failed", f"the audit writer process did not start in {_START_TIMEOUT:.0f} s", None)
        if reply is None or reply[0] != "ready":
            await child.stop(0)
            message, hint = (reply[1], reply[2]) if reply else ("the audit writer process exited at start", None)
            raise AuditError(message, hint=hint or "see the messages above")
        self.chain_id = reply[1]
        child.pipe.drained = self._handed_over
        self._child = child
        self._reader = asyncio.ensure_future(self._read(child))
