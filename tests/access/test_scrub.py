"""Error and notice texts scrubbed of values for grants that mask data."""

from __future__ import annotations

from sqlgate.access.scrub import scrub_fields, scrub_text


def test_data_errors_keep_their_sqlstate_and_name_the_type_only():
    fields = {
        "S": "ERROR",
        "C": "22P02",
        "M": 'invalid input syntax for type integer: "alice@example.com"',
        "D": "alice@example.com",
        "W": "SQL function",
    }
    scrubbed = scrub_fields(fields)
    assert scrubbed["C"] == "22P02"
    assert "type integer" in scrubbed["M"]
    assert "alice" not in str(scrubbed)


def test_integrity_errors_name_the_constraint_not_the_key():
    scrubbed = scrub_fields(
        {"C": "23505", "M": "duplicate key", "D": "Key (email)=(bob@example.com) exists", "n": "customers_email_key"}
    )
    assert "customers_email_key" in scrubbed["M"]
    assert "bob" not in str(scrubbed)


def test_errors_that_only_name_objects_keep_their_text_but_no_detail():
    scrubbed = scrub_fields({"C": "42703", "M": 'column "emial" does not exist', "H": "Perhaps email", "D": "x"})
    assert scrubbed == {"C": "42703", "M": 'column "emial" does not exist', "H": "Perhaps email"}


def test_raised_notices_and_exceptions_are_hidden():
    assert "carol" not in scrub_text("P0001", "carol@example.com")
    assert "carol" not in scrub_text("00000", "carol@example.com")
    assert "P0001" in scrub_text("P0001", "anything")
