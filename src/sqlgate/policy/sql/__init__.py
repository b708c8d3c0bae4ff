"""Guardrails on parsed SQL: classify statements (pglast for PostgreSQL, sqlglot for MySQL), then check them.

Typical use by the proxy, per session::

    registry = PreparedRegistry()
    result = classify(sql)                       # cached; never raises
    if (violation := check(decision.guardrails, result, prepared=registry)) is not None:
        raise violation.error()                  # GuardrailViolation, SQLSTATE 42501
    registry.observe(result)                     # remember PREPARE / DEALLOCATE

For protocol-level prepared statements (Parse with a name), the proxy calls
``registry.register(name, classify(query))`` itself.
"""

from sqlgate.policy.sql.check import Violation, check
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
    "classify",
    "clear_caches",
    "uncached_classify",
]
