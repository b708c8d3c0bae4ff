"""search(): filters, newest first, keyset pagination across chains; the tail/search CLI over it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from sqlgate.audit.events import AuditEvent, PrincipalRef
from sqlgate.audit.log import AuditLog
from sqlgate.audit.search import search
from sqlgate.cli import app
from sqlgate.config import load_settings
from sqlgate.store import StateStore
from tests.audit.conftest import ALICE, security, statement

BOB = PrincipalRef(subject="bob", issuer="https://other.example.com")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def fill(store, make_log):
    a, b = make_log(store, "a"), make_log(store, "b")
    await a.start()
    await b.start()
    for n in range(30):
        log = a if n % 2 else b
        await log.record(security(n, time=T0 + timedelta(minutes=n)))
        await log.submit(
            AuditEvent(
                type="statement",
                principal=BOB,
                database="staging",
                time=T0 + timedelta(minutes=n),
                data={"sql": f"SELECT {n} FROM Orders"},
            )
        )
    await a.aclose()
    await b.aclose()


async def test_filters(store, make_log):
    await fill(store, make_log)
    page = await search(store, who="alice", limit=1000)
    assert {r["principal"]["subject"] for r in page.records} == {"alice"}
    assert len(page.records) == 30
    assert len((await search(store, who="https://other.example.com#bob", db="staging", limit=1000)).records) == 30
    assert (await search(store, who="https://idp.example.com#bob")).records == []
    assert len((await search(store, type="lease.", limit=1000)).records) == 30
    assert len((await search(store, type="audit.*", limit=1000)).records) >= 2
    recent = await search(store, since=T0 + timedelta(minutes=25), until="2026-01-01T00:28:00Z", type="statement")
    # two chains write concurrently, so their insertion order (the search order) is not fixed
    assert sorted(r["data"]["sql"] for r in recent.records) == [f"SELECT {n} FROM Orders" for n in (25, 26, 27)]
    grepped = await search(store, grep="select 7 from orders")
    assert [r["data"]["sql"] for r in grepped.records] == ["SELECT 7 FROM Orders"]
    assert (await search(store, grep="100%_")).records == []


async def test_keyset_pages_cover_everything_once(store, make_log):
    await fill(store, make_log)
    everything = (await search(store, limit=1000)).records
    seen, cursor = [], None
    while True:
        page = await search(store, limit=7, cursor=cursor)
        seen += page.records
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [r["hash"] for r in seen] == [r["hash"] for r in everything]
    assert len({(r["chain"], r["seq"]) for r in seen}) == len(seen)


@pytest.mark.parametrize(
    "bad", [{"limit": 0}, {"limit": 1001}, {"cursor": "12"}, {"cursor": "p-1"}, {"since": "yesterday"}]
)
async def test_bad_input_is_a_value_error(sqlite_store, bad):
    with pytest.raises(ValueError):  # noqa: PT011 - each message is checked by the CLI test
        await search(sqlite_store, **bad)


def test_cli_tail_and_search(tmp_path):
    config = tmp_path / "sqlgate.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")

    async def populate():
        settings = load_settings(config)
        store = await StateStore.open(settings.state_url())
        async with AuditLog.from_settings(settings, store) as log:
            for n in range(5):
                await log.record(security(n))
                await log.submit(statement(n))
        await store.close()

    asyncio.run(populate())
    runner = CliRunner()
    tail = runner.invoke(app, ["audit", "tail", "-c", str(config), "-n", "3", "--json"])
    assert tail.exit_code == 0
    assert [json.loads(line)["type"] for line in tail.stdout.splitlines()] == [
        "lease.mint",
        "statement",
        "audit.checkpoint",
    ]
    found = runner.invoke(
        app, ["audit", "search", "-c", str(config), "--who", "alice", "--type", "statement", "--json"]
    )
    assert found.exit_code == 0
    assert len(found.stdout.splitlines()) == 5
    text = runner.invoke(app, ["audit", "search", "-c", str(config), "--grep", "SELECT 3"])
    assert "SELECT 3" in text.stdout
    bad = runner.invoke(app, ["audit", "search", "-c", str(config), "--since", "last week"])
    assert bad.exit_code == 2
    assert "not an ISO 8601 time" in bad.stderr
    assert ALICE.subject in runner.invoke(app, ["audit", "tail", "-c", str(config)]).stdout


async def test_outcome_and_session_filters(store, make_log):
    log = make_log(store, "a")
    await log.start()
    for n in range(6):
        await log.record(security(n, outcome="denied" if n % 3 == 0 else "success", session_id=f"s{n % 2}"))
    await log.aclose()
    denied = await search(store, outcome="denied", type="lease.mint", limit=1000)
    assert sorted(r["db_login"] for r in denied.records) == ["sg_alice_0", "sg_alice_3"]
    one_session = await search(store, session="s1", limit=1000)
    assert sorted(r["db_login"] for r in one_session.records) == ["sg_alice_1", "sg_alice_3", "sg_alice_5"]
    both = await search(store, session="s1", outcome="denied", limit=1000)
    assert [r["db_login"] for r in both.records] == ["sg_alice_3"]
