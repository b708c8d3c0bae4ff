"""``sqlgate audit``: verify, tail, search and export the audit log; print the public key.

Every command reads the settings (``-c``) to find the state database
(``settings.state_url()``) and the signing key. ``verify`` exits with a code
per kind of problem (see :mod:`sqlgate.audit.verify`): 0 intact, 4 altered,
5 deleted, 6 inserted, 7 reordered, 8 truncated, 9 bad signature,
10 unreadable.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.markup import escape
from sqlalchemy import func, select

from sqlgate.audit.keys import Signer, load_public_key, public_pem, signing_key_path
from sqlgate.audit.search import export_lines as store_lines
from sqlgate.audit.search import newer, search
from sqlgate.audit.storage import chain_ids, entries, read_heads
from sqlgate.audit.tables import audit_records
from sqlgate.audit.verify import EXIT_CODES, Verifier, VerifyReport, verify_lines
from sqlgate.cli.common import ConfigOption, JsonOption, console, err_console, fail, print_json
from sqlgate.config import Settings, load_settings
from sqlgate.errors import ConfigError
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


def _public_key(settings: Settings, pubkey: Path | None) -> Ed25519PublicKey:
    if pubkey is not None:
        try:
            return load_public_key(pubkey.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read public key {pubkey}: {exc.strerror}") from exc
    path = signing_key_path(settings.data_dir, settings.audit.signing_key_file)
    if not path.exists():
        raise ConfigError(f"no audit signing key at {path}; pass --pubkey FILE (from `sqlgate audit pubkey`)")
    return Signer.load(path).public_key


@audit_app.command("verify")
def audit_verify(
    config: ConfigOption = None,
    pubkey: Annotated[
        Path | None, typer.Option("--pubkey", help="Public key (PEM) to verify with; default: this deployment's.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Verify an exported JSONL file offline instead of the store.")
    ] = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="The file is an export made with --since: chains may start later.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Verify hash chains, checkpoints and signed heads; the exit code names the first problem."""
    settings = load_settings(config)
    key = _public_key(settings, pubkey)
    if file is not None:
        try:
            with file.open(encoding="utf-8", errors="strict") as handle:
                report = verify_lines(handle, key, partial=partial)
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {file}: {exc}", code=EXIT_UNREADABLE)
    else:
        report = _run(settings, lambda store: _verify_store(store, key))
    _print_report(report, as_json=as_json, offline=file is not None)
    raise typer.Exit(report.exit_code)


async def _verify_store(store: StateStore, key: Ed25519PublicKey) -> VerifyReport:
    verifier = Verifier(key, partial=False)
    heads = await read_heads(store)
    for chain in await chain_ids(store):
        async for entry in entries(store, chain, page=20_000):
            verifier.add(entry)
    return verifier.finish(heads)


def _print_report(report: VerifyReport, *, as_json: bool, offline: bool) -> None:
    if as_json:
        print_json(report.as_json())
        return
    total = sum(chain.records for chain in report.chains.values())
    for finding in report.findings:
        where = f"chain {finding.chain}" + (f" seq {finding.seq}" if finding.seq is not None else "")
        if finding.position is not None:
            where += f" ({'line' if offline else 'row'} {finding.position})"
        err_console.print(f"[red]{finding.kind.upper()}[/red] {escape(where)}: {escape(finding.message)}")
    if report.ok:
        console.print(f"[green]intact:[/green] {total} records in {len(report.chains)} chain(s)", highlight=False)
    for chain in report.chains.values():
        if offline and chain.unproven:
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


@audit_app.command("pubkey")
def audit_pubkey(config: ConfigOption = None) -> None:
    """Print the public key (PEM) that verifies this deployment's checkpoints."""
    settings = load_settings(config)
    sys.stdout.write(public_pem(_public_key(settings, None)))


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.add_typer(audit_app, name="audit")
