"""A view replaced in place while other sessions hold the old catalog: nothing they read comes back in clear.

A grant that masks data but allows DDL can create a harmless view, wait until every
session's catalog knows it, then redefine it over a masked column under the same
column name. The analysis must not trust the old definition: sessions that hold the
old catalog mask everything they read, and new sessions read the new definition.
"""

from __future__ import annotations

import psycopg

from tests.access.attack import http_query


def _connect(gateway, token):
    return psycopg.connect(**gateway.conninfo("bo", token), autocommit=True)


def test_a_view_redefined_over_a_masked_column_is_never_read_in_clear(attack):
    gateway, detector = attack
    token = gateway.token("bo", ("masked-builders",))
    with _connect(gateway, token) as builder:
        builder.execute("CREATE VIEW innocent AS SELECT id, name AS label FROM customers")
    with _connect(gateway, token) as holder:  # a session whose catalog knows the harmless view
        assert holder.execute("SELECT label FROM innocent WHERE id = 1").fetchone()[0].endswith(" 1")
        with _connect(gateway, token) as attacker:
            attacker.execute("CREATE OR REPLACE VIEW innocent AS SELECT id, email AS label FROM customers")
        seen = repr(holder.execute("SELECT label FROM innocent").fetchall())
        seen += repr(holder.cursor(binary=True).execute("SELECT label FROM innocent").fetchall())
    assert not detector.leaks(seen), seen[:300]
    with _connect(gateway, token) as fresh:  # a new session reads the new definition: the e-mail mask applies
        rows = fresh.execute("SELECT label FROM innocent ORDER BY id LIMIT 3").fetchall()
    assert all(label.endswith("@example.com") and "***" in label for (label,) in rows), rows
    assert not detector.leaks(http_query(gateway, token, "SELECT label FROM innocent"))


def test_a_temporary_object_changes_only_its_own_session(attack):
    gateway, detector = attack
    token = gateway.token("bo", ("masked-builders",))
    with _connect(gateway, token) as other, _connect(gateway, token) as maker:
        maker.execute("CREATE TEMP VIEW customers AS SELECT id, email AS name FROM public.customers")
        assert not detector.leaks(repr(maker.execute("SELECT name FROM customers").fetchall()))
        names = other.execute("SELECT name FROM customers WHERE id = 1").fetchone()[0]
    assert names.endswith(" 1")  # the other session still reads names in clear
