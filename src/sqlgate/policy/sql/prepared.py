"""PreparedRegistry: what each prepared statement of one session does.

``EXECUTE name`` says nothing by itself; the proxy records what ``name`` was
prepared as (SQL ``PREPARE`` or a protocol-level Parse message) and the
guardrails check that instead. An EXECUTE of a name the registry does not know
is refused whenever the grant has guardrails (fail closed).
"""

from __future__ import annotations

from sqlgate.policy.sql.result import Classification

MAX_PREPARED = 10_000


class PreparedRegistry:
    """Prepared statements of one session, by name."""

    def __init__(self) -> None:
        self._statements: dict[str, Classification] = {}

    def register(self, name: str, classification: Classification) -> None:
        """Remember that ``name`` was prepared as ``classification`` (replacing an older one)."""
        if name not in self._statements and len(self._statements) >= MAX_PREPARED:
            raise ValueError(f"more than {MAX_PREPARED} prepared statements in one session")
        self._statements[name] = classification

    def lookup(self, name: str) -> Classification | None:
        """What ``name`` was prepared as, or None."""
        return self._statements.get(name)

    def forget(self, name: str) -> None:
        """Drop ``name`` (``"*"`` drops all, as DEALLOCATE ALL)."""
        if name == "*":
            self._statements.clear()
        else:
            self._statements.pop(name, None)

    def observe(self, classification: Classification) -> None:
        """Track the PREPARE and DEALLOCATE statements of a classification that was allowed to run."""
        for statement in classification.statements:
            if statement.prepares:
                self.register(statement.prepares, Classification((statement,), classification.dialect))
            if statement.deallocates:
                self.forget(statement.deallocates)

    def __len__(self) -> int:
        return len(self._statements)
