"""Hypothesis: any text given to classify() gives a result, never an exception; unparsable text is refused."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sqlgate.policy import Guardrails
from sqlgate.policy.sql import check, classify, uncached_classify

READ_ONLY = Guardrails(deny=["write", "ddl", "dcl", "admin"])
SQLISH = st.lists(
    st.sampled_from(
        [
            "SELECT",
            "DELETE",
            "FROM",
            "t",
            ";",
            "/*",
            "*/",
            "--",
            "\n",
            "$$",
            "'",
            '"',
            "(",
            ")",
            "U&",
            "SET",
            "ROLE",
            "WITH",
            "AS",
            "INTO",
            "COPY",
            "PROGRAM",
            "1",
            ",",
            "set_config",
            "\\",
            "\x00",
            "é",
        ]
    ),
    max_size=30,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), SQLISH), st.sampled_from(["postgres", "mysql"]))
def test_classify_never_raises(text, dialect):
    result = uncached_classify(text, dialect)
    assert result.parsed or result.statements == ()
    violation = check(READ_ONLY, result)
    if not result.parsed:
        assert violation is not None
    assert classify(text, dialect) == result
