"""Guardrails on parsed SQL: classify statements (pglast for PostgreSQL, sqlglot for MySQL), then check them.

Typical use by the proxy, per session::

    registry = PreparedRegistry()
    result = classify(sql)                       # cached; never raises
    if (violation := check(decision.guardrails, result, prepared=registry)) is not None:
        raise violation.error()                  # GuardrailViolation, SQLSTATE 42501
    registry.observe(result)                     # remember PREPARE / DEALLOCATE

For protocol-level prepared statements (Parse with a name), the proxy calls
``registry.register(name, classify(query))`` itself.

Bind parameters that name a setting (``SELECT set_config($1, $2, false)``): the
access pipeline checks the Parse with ``check(..., defer_bound=True)`` and each
Bind with ``check_bound(classification, values)``, which refuses ``$1`` = ``role``
or ``session_authorization``; ``check()`` alone refuses such a statement.
"""

from sqlgate.policy.sql.check import Violation, check, check_bound
from sqlgate.policy.sql.classify import classify, clear_caches, uncached_classify
from sqlgate.policy.sql.prepared import PreparedRegistry
from sqlgate.policy.sql.result import CLASSES, Classification, Dialect, Statement

__all__ = [
    "CLASSES",
    "Classification",
    "Dialect",
    "PreparedRegistry",
    "Statement",
    "Violation",
    "check",
    "check_bound",
    "classify",
    "clear_caches",
    "uncached_classify",
]
