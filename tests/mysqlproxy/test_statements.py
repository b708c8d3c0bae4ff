"""The MySQL statement policy without a server: literal shapes only where certain, KILL, USE, LOCAL INFILE."""

from __future__ import annotations

from sqlgate.access.mysql.statements import Kill, StatementPolicy, shape_key
from sqlgate.policy.model import Guardrails

READ_ONLY = Guardrails(deny=["write", "ddl", "dcl", "admin"])


def test_texts_that_differ_in_literals_share_a_shape():
    """Numbers and single-quoted strings become markers in plain DML."""
    assert shape_key("SELECT c FROM t WHERE id = 5") == shape_key("SELECT c FROM t WHERE id = 77")
    assert shape_key("SELECT c FROM t WHERE n = 'a'") == shape_key("SELECT c FROM t WHERE n = 'b'")


def test_hash_comments_backslashes_and_several_statements_keep_their_text():
    """A quote inside a # comment would hide what follows it: such texts are their own key."""
    hidden = "SELECT a FROM t # '\nUNION SELECT password FROM mysql.user #'"
    assert shape_key(hidden) == hidden
    assert shape_key(hidden) != shape_key("SELECT a FROM t # 'x'")
    assert shape_key("SELECT 'a\\' FROM t") == "SELECT 'a\\' FROM t"
    assert shape_key("SELECT 1; DROP TABLE t") == "SELECT 1; DROP TABLE t"


def test_kill_use_and_local_infile():
    """KILL is handed to the session; USE names only the granted database; LOAD DATA LOCAL needs write and admin."""
    policy = StatementPolicy(READ_ONLY, database="shop_db", rule="r", alias="shop")
    assert policy.check("KILL QUERY 12").kill == Kill(12, query_only=True)
    assert policy.check("kill connection 3;").kill == Kill(3, query_only=False)
    assert policy.check("USE shop_db").verdict.refusal is None
    refusal = policy.check("USE mysql").verdict.refusal
    assert refusal is not None
    assert "shop" in refusal
    local = policy.check("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t")
    assert local.local_infile
    assert local.verdict.refusal is not None
    open_policy = StatementPolicy(None, database="shop_db", rule=None)
    assert open_policy.allows_local_infile()
    assert open_policy.check("LOAD DATA LOCAL INFILE 'f' INTO TABLE t").verdict.refusal is None
    assert policy.message("no") == "no (rule r)"
