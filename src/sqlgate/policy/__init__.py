"""Policy: rules that turn a verified identity into a grant, guardrails on parsed SQL, masking.

- :mod:`~sqlgate.policy.model` — the policy file schema (``load_policy_file``).
- :mod:`~sqlgate.policy.compiled` — rules compiled and indexed for fast decisions.
- :mod:`~sqlgate.policy.decide` — pure ``decide()`` -> :class:`Decision`; :mod:`~sqlgate.policy.explain` — why.
- :mod:`~sqlgate.policy.holder` — :class:`PolicyHolder`, hot reload with the old policy kept on error.
- :mod:`~sqlgate.policy.sql` — guardrails on parsed SQL: ``classify()``, ``check()``, ``PreparedRegistry``.
- :mod:`~sqlgate.policy.masking` — :class:`Masker` and the masking functions.
- :mod:`~sqlgate.policy.requests` — :class:`RequestService`, just-in-time access requests.
- :mod:`~sqlgate.policy.cases` — expected decisions for ``sqlgate policy test``.
"""

from sqlgate.policy.compiled import CompiledPolicy, compile_policy
from sqlgate.policy.decide import Decision, Grant, decide
from sqlgate.policy.explain import Explanation, RuleTrace, explain
from sqlgate.policy.holder import PolicyHolder, load_policy
from sqlgate.policy.masking import Masker
from sqlgate.policy.model import Guardrails, PolicyFile, Rule, load_policy_file

__all__ = [
    "CompiledPolicy",
    "Decision",
    "Explanation",
    "Grant",
    "Guardrails",
    "Masker",
    "PolicyFile",
    "PolicyHolder",
    "Rule",
    "RuleTrace",
    "compile_policy",
    "decide",
    "explain",
    "load_policy",
    "load_policy_file",
]
