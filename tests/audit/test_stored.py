"""verify_stored() with settings_trust(): the routine behind `sqlgate audit verify`, doctor and the console badge."""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from sqlgate.audit.stored import settings_trust, verify_stored
from sqlgate.audit.tables import audit_records
from sqlgate.config import load_settings
from sqlgate.store import StateStore
from tests.audit.conftest import CHAIN, tamper


def report_of(config):
    return asyncio.run(_report(config))


async def _report(config):
    settings = load_settings(config)
    store = await StateStore.open(settings.state_url())
    try:
        return await verify_stored(store, settings_trust(settings).ring)
    finally:
        await store.close()


def test_intact_then_altered(config):
    report = report_of(config)
    assert report.ok
    assert report.status == "intact"
    assert sum(chain.records for chain in report.chains.values()) == 24
    row = (audit_records.c.chain == CHAIN) & (audit_records.c.seq == 3)
    tamper(config, update(audit_records).where(row).values(body=audit_records.c.body + " "))
    report = report_of(config)
    assert report.status == "altered"
    assert report.findings[0].seq == 3
