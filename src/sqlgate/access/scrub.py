"""Error and notice texts without values, for sessions whose grant masks data.

PostgreSQL quotes values in many messages (``invalid input syntax for type
integer: "alice@example.com"``, ``Key (email)=(...) already exists``), so a
grant that masks a column would otherwise read it through an error. When the
grant masks anything:

- errors of classes that only ever name objects and types (syntax, access,
  missing objects, connection, transaction state, resources, operator
  intervention) keep their message and hint; detail, context and internal
  query are dropped;
- class 22 (data) and 23 (integrity) errors keep their SQLSTATE and get a
  generic message naming the type (22) or the constraint (23);
- every other error and notice (RAISE from functions, warnings) gets a generic
  message with its SQLSTATE.

The audit log records the scrubbed text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

HIDDEN = "the value is hidden because this grant masks data"
SAFE_CLASSES = frozenset(
    {"08", "0A", "0B", "0L", "0P", "25", "26", "28", "2B", "2D", "34", "3B", "3D", "3F", "40", "42", "53", "54", "55",
     "57", "58", "F0", "HV"}
)
# Fields that carry names, positions and the server's source location only.
_KEPT_FIELDS = frozenset("SVCMHPFLRstcdn")
_GENERIC_FIELDS = frozenset("SVCFLRstcdn")
_TYPE = re.compile(r"\btype ([a-z][a-z0-9_]*(?: (?:precision|varying|zone|without time zone|with time zone))?)")


def scrub_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """The fields of an ErrorResponse or NoticeResponse (by one-letter code) with values taken out."""
    sqlstate = fields.get("C", "")
    if sqlstate[:2] in SAFE_CLASSES:
        return {code: value for code, value in fields.items() if code in _KEPT_FIELDS}
    scrubbed = {code: value for code, value in fields.items() if code in _GENERIC_FIELDS}
    scrubbed["M"] = generic_message(sqlstate, fields.get("M", ""), fields.get("n"))
    return scrubbed


def generic_message(sqlstate: str, message: str, constraint: str | None = None) -> str:
    """A message that keeps what kind of failure it was and none of the values."""
    if sqlstate.startswith("22"):
        match = _TYPE.search(message)
        what = f"for type {match.group(1)}" if match else "for the operation"
        return f"invalid value {what} (SQLSTATE {sqlstate}; {HIDDEN})"
    if sqlstate.startswith("23"):
        which = f" {constraint}" if constraint else ""
        return f"the statement violates constraint{which} (SQLSTATE {sqlstate}; {HIDDEN})"
    return f"the database reported SQLSTATE {sqlstate or '?'} (its text is hidden because this grant masks data)"


def scrub_text(sqlstate: str | None, message: str) -> str:
    """Just the message, scrubbed as :func:`scrub_fields` would (for the API and audit records)."""
    return scrub_fields({"C": sqlstate or "", "M": message}).get("M", "")
