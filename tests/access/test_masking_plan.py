"""The masking plan: from lineage and the result's columns to what each column becomes. Pure."""

from __future__ import annotations

from sqlgate.access.masking import UNKNOWN_OUTPUTS, MaskingEngine, MaskRules, SessionMasking, align
from sqlgate.policy.sql.catalog_model import CatalogModel
from sqlgate.policy.sql.lineage import UNKNOWN, Column, Lineage

EMAIL = Column("public.customers", "email")
SSN = Column("public.customers", "ssn")
ID = Column("public.customers", "id")
RULES = MaskRules({"customers.email": "email", "*.ssn": "null"}, hash_key=b"k")


def _catalog():
    rows = [(1, "public", "customers", "r", n, c) for n, c in enumerate(["id", "email", "ssn"], 1)]
    return CatalogModel.build(rows, {}, [])


def test_a_masked_column_unchanged_gets_its_function_on_the_source_value():
    mask = RULES.column_mask(Lineage(frozenset({EMAIL}), EMAIL), text_like=True)
    assert mask is not None
    assert mask.function is not None
    assert mask.function("alice@example.com") == "a***@example.com"


def test_a_derived_value_is_replaced_whole_and_a_null_rule_wins():
    derived = RULES.column_mask(Lineage(frozenset({EMAIL})), text_like=True)
    assert derived is not None
    assert (derived.function, derived.replacement) == (None, "****")
    with_null_rule = RULES.column_mask(Lineage(frozenset({EMAIL, SSN})), text_like=True)
    assert with_null_rule is not None
    assert with_null_rule.replacement is None
    not_text = RULES.column_mask(Lineage(frozenset({EMAIL}), EMAIL), text_like=False)
    assert not_text is not None
    assert (not_text.function, not_text.replacement) == (None, None)


def test_clean_columns_pass_and_unknown_ones_are_masked():
    assert RULES.column_mask(Lineage(frozenset({ID}), ID), text_like=False) is None
    unknown = RULES.column_mask(UNKNOWN, text_like=True)
    assert unknown is not None
    assert unknown.replacement == "****"


def test_a_result_that_does_not_line_up_with_the_analysis_is_masked_whole():
    outputs = (Lineage(frozenset({ID}), ID, name="id"), Lineage(frozenset({EMAIL}), EMAIL, name="email"))
    assert align(outputs, ["id", "email"]) == list(outputs)
    assert all(o.unknown for o in align(outputs, ["email", "id"]))  # names swapped
    assert all(o.unknown for o in align(outputs, ["id"]))  # count differs
    assert all(o.unknown for o in align(None, ["x"]))
    spread = (Lineage(name="id"), Lineage(spread=True))
    assert len(align(spread, ["id", "a", "b"])) == 3


def test_cursors_and_prepared_statements_are_remembered_per_session():
    session = SessionMasking(MaskingEngine(RULES, _catalog()))
    refusal, (declared, fetched) = session.statements(
        "DECLARE c CURSOR FOR SELECT email FROM customers; FETCH ALL FROM c"
    )
    assert refusal is None
    assert declared is None
    assert fetched is not None
    assert fetched[0].direct == EMAIL
    session.transaction_ended()  # a cursor without WITH HOLD is gone; its name may be reused by anyone
    assert session.statements("FETCH ALL FROM c")[1] == [UNKNOWN_OUTPUTS]
    assert session.statements("EXECUTE nothing_prepared")[1] == [UNKNOWN_OUTPUTS]


def test_refusals_name_what_would_leak():
    engine = MaskingEngine(RULES, _catalog())
    refusal = engine.refusal(engine.analyze("SELECT set_config('a.b', email, false) FROM customers"))
    assert refusal is not None
    assert "public.customers.email" in refusal
    assert engine.refusal(engine.analyze("SELECT set_config('a.b', 'x', false)")) is None
    assert engine.refusal(engine.analyze("SELEC")) is not None
