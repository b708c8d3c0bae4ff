"""Login names, markers and SQL quoting."""

from __future__ import annotations

import pytest

from sqlgate.broker.names import (
    lease_id_of,
    login_name,
    login_pattern,
    marker,
    mysql_string,
    quote_ident,
    quote_literal,
)
from sqlgate.identity.principal import Principal


def test_login_names_are_readable_unique_and_bounded():
    """The name part comes from the email or name, lower-cased ASCII; 63 (or 32) characters at most."""
    alice = Principal(subject="1", issuer="i", name="Alice", email="Alice.O'Hara@example.com")
    first, second = login_name("sg", alice), login_name("sg", alice)
    assert first != second
    assert first.startswith("sg_alice_o_hara_")
    assert login_pattern("sg").match(first)
    long = Principal(subject="2", issuer="i", name="Zoë " * 40)
    assert len(login_name("sg", long)) <= 63
    assert 30 <= len(login_name("sg", long, max_length=32)) <= 32
    assert login_name("sg", long).startswith("sg_zoe_zoe")
    assert login_pattern("sg").match(login_name("sg", Principal(subject="3", issuer="i", name="日本")))


def test_pattern_does_not_match_other_roles():
    pattern = login_pattern("sg")
    assert not pattern.match("sg_admin")
    assert not pattern.match("sgx_alice_0123456789ab")
    assert not pattern.match("sg_Alice_0123456789ab")


def test_marker_round_trip_and_foreign_comments():
    lease_id = "0123456789abcdef0123456789abcdef"
    comment = marker(lease_id, "https://idp#sub\nDROP")
    assert lease_id_of(comment) == lease_id
    assert "\n" not in comment
    assert lease_id_of("created by hand") is None
    assert lease_id_of(None) is None


def test_quoting():
    assert quote_ident('we"ird') == '"we""ird"'
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("back\\slash") == "E'back\\\\slash'"
    assert mysql_string("o'h\\") == "'o\\'h\\\\'"
    with pytest.raises(ValueError, match="NUL"):
        quote_ident("a\x00b")


def test_quoted_comment_is_inert(pg_server):
    """A principal key full of quotes and backslashes ends up verbatim in a comment, executing nothing."""
    nasty = "https://x#'); DROP ROLE postgres; --\\'"
    pg_server.psql(f"CREATE ROLE quote_probe; COMMENT ON ROLE quote_probe IS {quote_literal(marker('a' * 32, nasty))}")
    try:
        comment = pg_server.psql("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname='quote_probe'")
        assert comment.strip() == marker("a" * 32, nasty)
    finally:
        pg_server.psql("DROP ROLE quote_probe")
