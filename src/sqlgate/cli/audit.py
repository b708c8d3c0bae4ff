"""``sqlgate audit``: verify, tail, search and export the audit log; print the heads and the public key.

Every command reads the settings (``-c``) to find the state database
(``settings.state_url()``) and the signing key. ``verify`` exits with a code
per kind of problem (see :mod:`sqlgate.audit.verify`): 0 intact, 4 altered,
5 deleted, 6 inserted, 7 reordered, 8 truncated, 9 bad signature,
10 unreadable, and with ``--strict`` 11 dropped records, 12 an unproven tail.

What an attacker on this host can rewrite, verify cannot prove alone: it
trusts the key found here unless keys are pinned (``--pubkey``, which replaces
``audit.trusted_keys``), and a log wiped or cut back together with its stored
heads looks whole. ``sqlgate audit head`` prints the signed heads to keep
elsewhere; ``verify --head FILE`` fails unless the log still holds them.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.markup import escape
from sqlalchemy import func, select

from sqlgate.audit.keys import KeyRing, Signer, fingerprint, public_pem, signing_key_path
from sqlgate.audit.search import export_lines as store_lines
from sqlgate.audit.search import newer, search
from sqlgate.audit.storage import Head, read_heads
from sqlgate.audit.stored import settings_trust, verify_stored
from sqlgate.audit.tables import audit_records
from sqlgate.audit.trust import Trust
from sqlgate.audit.verify import EXIT_CODES, VerifyReport, head_signed, verify_lines
from sqlgate.cli.common import ConfigOption, JsonOption, console, err_console, fail, print_json
from sqlgate.config import Settings, load_settings
from sqlgate.errors import ConfigError
from sqlgate.replicas.audit_keys import registered_keys, with_registered
from sqlgate.store import StateStore

T = TypeVar("T")
EXIT_UNREADABLE = EXIT_CODES["unreadable"]

audit_app = typer.Typer(help="Verify, tail, search and export the audit log.", no_args_is_help=True)


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[StateStore]:
    store = await StateStore.open(settings.state_url())
    try:
        yield store
    finally:
        await store.close()


def _run(settings: Settings, work: Callable[[StateStore], Awaitable[T]]) -> T:
    async def main() -> T:
        async with _store(settings) as store:
            return await work(store)

    return asyncio.run(main())


def _host_key_path(settings: Settings) -> Path:
    return signing_key_path(settings.data_dir, settings.audit.signing_key_file)


def _host_public_key(settings: Settings) -> Ed25519PublicKey:
    path = _host_key_path(settings)
    if not path.exists():
        raise ConfigError(f"no audit signing key at {path}; pass --pubkey FILE (from `sqlgate audit pubkey`)")
    return Signer.load(path).public_key


def _trust(settings: Settings, pubkeys: list[str] | None) -> Trust:
    """The keys to verify with: ``--pubkey`` (all of them), else ``audit.trusted_keys``, else the host's key."""
    return settings_trust(settings, pubkeys)


PubkeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--pubkey",
        help="A trusted public key: a PEM file (`sqlgate audit pubkey`) or its SHA-256 fingerprint "
        "(`--fingerprint`). Repeat for several. Replaces audit.trusted_keys; with neither, the key on this "
        "host is trusted.",
        show_default=False,
    ),
]


@audit_app.command("verify")
def audit_verify(  # noqa: PLR0913, PLR0917 - one option per input (Typer)
    config: ConfigOption = None,
    pubkey: PubkeyOption = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Verify an exported JSONL file offline instead of the store.")
    ] = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="The file is an export made with --since: chains may start later.")
    ] = False,
    head: Annotated[
        Path | None,
        typer.Option(
            "--head",
            help="Heads saved earlier from `sqlgate audit head`: fail unless the log still holds those records "
            "with those hashes (catches a wiped, cut or re-chained log whose stored heads were rewritten too).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Also fail on dropped records (exit 11) and on records after the last checkpoint that no "
            "signed head covers (exit 12).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Verify hash chains, checkpoints and signed heads; the exit code names the first problem."""
    settings = load_settings(config)
    trust = _trust(settings, pubkey)
    anchors = _read_anchors(head) if head is not None else []
    if file is not None:
        try:
            with file.open(encoding="utf-8", errors="strict") as handle:
                report = verify_lines(handle, trust.ring, partial=partial, anchors=anchors, strict=strict)
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {file}: {exc}", code=EXIT_UNREADABLE)
    else:
        pins = list(pubkey or settings.audit.trusted_keys)
        report, trust = _run(settings, lambda store: _verify_replicas(store, trust, pins, anchors, strict=strict))
    _print_report(report, trust, as_json=as_json, offline=file is not None)
    raise typer.Exit(report.exit_code)


async def _verify_store(store: StateStore, keys: KeyRing, anchors: list[Head], *, strict: bool) -> VerifyReport:
    return await verify_stored(store, keys, anchors, strict=strict)


async def _verify_replicas(
    store: StateStore, trust: Trust, pins: list[str], anchors: list[Head], *, strict: bool
) -> tuple[VerifyReport, Trust]:
    """Verify with the audit keys every replica registered too (those pinned, or all when none are)."""
    if not store.is_sqlite:
        trust = with_registered(trust, pins, await registered_keys(store))
    return await verify_stored(store, trust.ring, anchors, strict=strict), trust


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHAIN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _read_anchors(path: Path) -> list[Head]:
    """The heads in a file written by ``sqlgate audit head`` (exit 10 with the reason when it is not one)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        fail(f"cannot read heads from {path}: {exc}", code=EXIT_UNREADABLE)
    if not isinstance(value, list) or not value:
        fail(f"{path} holds no heads (expected the JSON list `sqlgate audit head` prints)", code=EXIT_UNREADABLE)
    heads: list[Head] = []
    for number, item in enumerate(value, start=1):
        problem = _anchor_problem(item)
        if problem:
            fail(f"{path}: head {number}: {problem}", code=EXIT_UNREADABLE)
        if any(head.chain == item["chain"] for head in heads):
            fail(f"{path}: two heads for chain {item['chain']}", code=EXIT_UNREADABLE)
        chains = item.get("chains")
        heads.append(
            Head(
                item["chain"],
                item["seq"],
                item["hash"],
                str(item.get("time") or ""),
                item["key_id"],
                item["signature"],
                None if chains is None else tuple(chains),
            )
        )
    return heads


def _anchor_problem(item: object) -> str | None:  # noqa: PLR0911 - one reason per field
    """Why ``item`` is not a head as ``sqlgate audit head`` prints it, or None."""
    if not isinstance(item, dict):
        return "not a JSON object"
    if not isinstance(item.get("chain"), str) or not _CHAIN_ID.match(item["chain"]):
        return "`chain` is not a chain id"
    if type(item.get("seq")) is not int or item["seq"] < 1:
        return "`seq` is not a positive integer"
    if not isinstance(item.get("hash"), str) or not _HEX64.match(item["hash"]):
        return "`hash` is not 64 lower-case hex digits"
    if not isinstance(item.get("signature"), str) or not item["signature"]:
        return "`signature` is missing"
    if not isinstance(item.get("key_id"), str):
        return "`key_id` is missing"
    chains = item.get("chains")
    if chains is not None and not (isinstance(chains, list) and all(isinstance(c, str) for c in chains)):
        return "`chains` is not a list of chain ids"
    return None


def _print_report(report: VerifyReport, trust: Trust, *, as_json: bool, offline: bool) -> None:
    if as_json:
        print_json({**report.as_json(), "trust": trust.as_json()})
        return
    for note in trust.notes:
        err_console.print(f"[yellow]warning:[/yellow] {escape(note)}", highlight=False)
    total = sum(chain.records for chain in report.chains.values())
    for finding in report.findings:
        where = f"chain {finding.chain}" + (f" seq {finding.seq}" if finding.seq is not None else "")
        if finding.position is not None:
            where += f" ({'line' if offline else 'row'} {finding.position})"
        err_console.print(f"[red]{finding.kind.upper()}[/red] {escape(where)}: {escape(finding.message)}")
    if report.ok:
        console.print(f"[green]intact:[/green] {total} records in {len(report.chains)} chain(s)", highlight=False)
        keys = ", ".join(f"{k.key_id} ({k.source})" for k in trust.ring.keys)
        console.print(f"signed by: {escape(keys)}{'' if trust.ring.pinned else ' - NOT pinned'}", highlight=False)
    if report.unended:
        shown = ", ".join(report.unended[:10]) + (" ..." if len(report.unended) > 10 else "")
        console.print(
            f"note: {len(report.unended)} session(s) started and have no session.end: still open, or their "
            f"gateway stopped without ending them (killed): {escape(shown)}",
            highlight=False,
        )
    for chain in report.chains.values():
        if chain.dropped and (chain.finding is None or chain.finding.kind != "dropped"):
            console.print(
                f"note: chain {escape(chain.chain)}: {chain.dropped} record(s) were dropped before they were "
                "written (its checkpoints say so); --strict fails on this",
                highlight=False,
            )
        if offline and chain.unproven and not report.strict:
            console.print(
                f"note: chain {escape(chain.chain)}: the last {chain.unproven} record(s) follow the last checkpoint "
                "and cannot be proven from this file alone",
                highlight=False,
            )


def _show(records: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    for record in records:
        console.print(_line(record), highlight=False, markup=False, soft_wrap=True)


def _line(record: dict[str, Any]) -> str:
    principal = record.get("principal") or {}
    parts = [record["time"], record["type"], record["outcome"], principal.get("subject") or "-"]
    parts.append(record.get("database") or "-")
    data = record.get("data") or {}
    detail = record.get("reason") or data.get("sql") or ""
    return "  ".join(str(part) for part in parts) + (f"  {detail}" if detail else "")


@audit_app.command("tail")
def audit_tail(
    config: ConfigOption = None,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, max=1000, help="How many records to show.")] = 20,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new records as they arrive.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the newest audit records (oldest of them first)."""
    settings = load_settings(config)

    async def work(store: StateStore) -> None:
        page = await search(store, limit=lines)
        records = list(reversed(page.records))
        _show(records, as_json=as_json)
        if not follow:
            return
        after = await _last_position(store)
        while True:
            await asyncio.sleep(1.0)
            fresh = await newer(store, after)
            if fresh:
                after = fresh[-1][0]
                _show([record for _, record in fresh], as_json=as_json)

    try:
        _run(settings, work)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


async def _last_position(store: StateStore) -> int:
    async with store.begin() as conn:
        return int((await conn.execute(select(func.coalesce(func.max(audit_records.c.id), 0)))).scalar_one())


@audit_app.command("search")
def audit_search(  # noqa: PLR0913, PLR0917 - one option per filter (Typer)
    config: ConfigOption = None,
    who: Annotated[str | None, typer.Option("--who", help="Subject, or issuer#subject.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database alias.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this time (ISO 8601).")] = None,
    record_type: Annotated[
        str | None, typer.Option("--type", help="Event type, or a prefix such as `lease.` or `auth.*`.")
    ] = None,
    grep: Annotated[str | None, typer.Option("--grep", help="Text anywhere in the record (case-insensitive).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Most records to show.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Search audit records, newest first."""
    settings = load_settings(config)
    filters = {"who": who, "db": db, "since": since, "until": until, "type": record_type, "grep": grep}
    try:
        page = _run(settings, lambda store: search(store, limit=limit, **filters))
    except ValueError as exc:
        fail(str(exc), code=2)
    _show(page.records, as_json=as_json)


@audit_app.command("export")
def audit_export(
    config: ConfigOption = None,
    since: Annotated[str | None, typer.Option("--since", help="Only records from this time (ISO 8601).")] = None,
) -> None:
    """Write the audit log to stdout as JSON lines (verify it with `sqlgate audit verify --file`)."""
    settings = load_settings(config)

    async def work(store: StateStore) -> None:
        out = sys.stdout
        async for line in store_lines(store, since=since):
            out.write(line + "\n")
        out.flush()

    try:
        _run(settings, work)
    except ValueError as exc:
        fail(str(exc), code=2)


@audit_app.command("head")
def audit_head(config: ConfigOption = None, pubkey: PubkeyOption = None, as_json: JsonOption = False) -> None:
    """Print the signed head of every chain as JSON, to keep where this host cannot rewrite it.

    Later, `sqlgate audit verify --head FILE` fails unless the log still holds
    those records with those hashes. Refuses (exit 9) when a stored head's
    signature does not verify with the trusted keys: a forged head is no anchor.
    """
    del as_json  # the output is JSON either way; the flag is accepted for scripts that always pass it
    settings = load_settings(config)
    trust = _trust(settings, pubkey)
    heads = _run(settings, read_heads)
    for note in trust.notes:
        err_console.print(f"[yellow]warning:[/yellow] {escape(note)}", highlight=False)
    bad = [head.chain for head in heads.values() if not head_signed(head, trust.ring)]
    if bad:
        fail(
            f"the stored head of chain(s) {', '.join(bad)} is not signed by a trusted key; "
            "run `sqlgate audit verify` before saving heads",
            code=EXIT_CODES["bad_signature"],
        )
    if not heads:
        err_console.print("note: the audit log has no chains yet", highlight=False)
    print_json([heads[chain].as_json() for chain in sorted(heads)])


@audit_app.command("pubkey")
def audit_pubkey(
    config: ConfigOption = None,
    show_fingerprint: Annotated[
        bool,
        typer.Option("--fingerprint", help="Print the key's SHA-256 fingerprint (for audit.trusted_keys) instead."),
    ] = False,
) -> None:
    """Print the public key (PEM) that verifies this deployment's checkpoints."""
    settings = load_settings(config)
    key = _host_public_key(settings)
    sys.stdout.write(f"{fingerprint(key)}\n" if show_fingerprint else public_pem(key))


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.add_typer(audit_app, name="audit")
