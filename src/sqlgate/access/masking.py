"""Masking for every front end: from the statement's column lineage to what each output column becomes.

One engine per (grant's mask rules, database catalog); one :class:`SessionMasking`
per session (or per API call), which remembers the cursors and SQL-level
prepared statements it saw so ``FETCH`` and ``EXECUTE`` get the plan of the
statement they run.

For each output column (see :mod:`sqlgate.policy.sql.lineage`):

- it depends on no masked column: sent as it is;
- it *is* one masked column, unchanged (aliases included): that column's mask
  function runs on the source value (``c***@example.com``);
- it depends on a masked column any other way (a transform, an aggregate, a
  whole row, JSON, an array), or its origin cannot be proven: replaced whole —
  ``****`` for text types, NULL for other types or when a rule says ``null`` —
  so no transform of a masked value (``reverse(email)``) reaches the client.

When the result does not line up with the analysis (a column count or a name
differs), every column is replaced whole (fail closed).

The same engine refuses what masking cannot cover: statements that do not
parse, opaque ones (``DO``), and statements that would move a masked value
somewhere else — into a table (``INSERT ... SELECT``, ``UPDATE ... SET``, ``CREATE TABLE AS``),
into session state or a notification (``set_config``, ``pg_notify``), into a
user-defined function — or out through ``COPY``.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlgate.pgwire.backend import data_row_values
from sqlgate.policy.masking import FUNCTIONS, REDACTED, Masker, MaskFn
from sqlgate.policy.sql.catalog_model import CatalogModel
from sqlgate.policy.sql.lineage import UNKNOWN, Analysis, Column, Lineage, StatementLineage, analyze
from sqlgate.policy.sql.shape import literal_shape

TEXT_LIKE_TYPE_OIDS = frozenset({25, 1043, 1042, 19, 18})
TEXT_LIKE_TYPE_NAMES = frozenset({"text", "varchar", "bpchar", "name", "char"})
Outputs = tuple[Lineage, ...] | None
UNKNOWN_OUTPUTS: Outputs = (Lineage(unknown=True, spread=True),)
_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")
_NULL = _INT32.pack(-1)
_NULL_RULE = FUNCTIONS["null"]
_CACHED_ANALYSES = 2048


@dataclass(frozen=True, slots=True)
class ColumnMask:
    """What one output column becomes: ``function`` on the source value, or ``replacement`` whole."""

    function: MaskFn | None
    replacement: str | None


Plan = Mapping[int, ColumnMask]


class MaskRules:
    """A grant's mask rules as a question about base columns (``hash`` keyed per deployment)."""

    def __init__(self, mask: Mapping[str, str], *, hash_key: bytes) -> None:
        self._masker = Masker(mask, hash_key=hash_key)
        self._functions: dict[Column, MaskFn | None] = {}

    def __bool__(self) -> bool:
        return bool(self._masker)

    def function(self, column: Column) -> MaskFn | None:
        """The mask function for ``column``, or None when no rule masks it."""
        if column not in self._functions:
            self._functions[column] = self._masker.columns_to_mask([(column.relation, column.name)]).get(0)
        return self._functions[column]

    def masked(self, lineage: Lineage) -> list[Column]:
        """The masked columns ``lineage`` depends on."""
        return [column for column in lineage.deps if self.function(column) is not None]

    def column_mask(self, lineage: Lineage, *, text_like: bool) -> ColumnMask | None:
        """How one output with ``lineage`` is masked, or None when it is sent as it is."""
        masked = self.masked(lineage)
        if not masked and not lineage.unknown:
            return None
        if text_like and not lineage.unknown and lineage.direct is not None and masked == [lineage.direct]:
            return ColumnMask(self.function(lineage.direct), None)
        nulls = any(self.function(column) is _NULL_RULE for column in masked)
        return ColumnMask(None, REDACTED if text_like and not nulls else None)

    def leak(self, lineage: Lineage) -> str | None:
        """The name of a masked column ``lineage`` carries (or "a column of unknown origin"), else None."""
        masked = self.masked(lineage)
        if masked:
            column = min(masked, key=lambda c: (c.relation, c.name))
            return f"{column.relation}.{column.name}"
        return "a column whose origin cannot be traced" if lineage.unknown else None


class MaskingEngine:
    """Analyses (cached) and plans for one grant's rules over one database catalog."""

    def __init__(self, rules: MaskRules, catalog: CatalogModel) -> None:
        self.rules = rules
        self.catalog = catalog
        self._analyses: OrderedDict[str, Analysis] = OrderedDict()

    def analyze(self, sql: str) -> Analysis:
        """The lineage analysis of ``sql``, remembered by its literal shape for the most recent shapes.

        Lineage never depends on a constant's value, so texts that differ only in their
        literals (``... WHERE id = 1`` and ``... WHERE id = 2``) share one analysis.
        """
        key = literal_shape(sql) or sql
        found = self._analyses.get(key)
        if found is not None:
            self._analyses.move_to_end(key)
            return found
        analysis = analyze(sql, self.catalog)
        self._analyses[key] = analysis
        if len(self._analyses) > _CACHED_ANALYSES:
            self._analyses.popitem(last=False)
        return analysis

    def refusal(self, analysis: Analysis) -> str | None:
        """Why a grant that masks data must refuse this text, or None."""
        if analysis.error is not None:
            return f"the statement does not parse ({analysis.error}), so what it reveals cannot be traced"
        for statement in analysis.statements:
            if statement.opaque is not None:
                return statement.opaque
            for sink in statement.sinks:
                leak = self.rules.leak(sink.lineage)
                if leak is not None:
                    return f"{sink.what} would receive {leak}, which this grant masks"
        return None

    def plan(self, outputs: Outputs, columns: Sequence[tuple[str, bool]]) -> Plan:
        """The mask of each result column, given as (name, text-like type); empty when nothing is masked."""
        aligned = align(outputs, [name for name, _ in columns])
        plan: dict[int, ColumnMask] = {}
        for index, (lineage, (_name, text_like)) in enumerate(zip(aligned, columns, strict=True)):
            mask = self.rules.column_mask(lineage, text_like=text_like)
            if mask is not None:
                plan[index] = mask
        return plan


def align(outputs: Outputs, names: Sequence[str]) -> list[Lineage]:
    """One lineage per result column, or UNKNOWN for all when the result does not match the analysis."""
    count = len(names)
    if outputs is None:
        return [UNKNOWN] * count
    spreads = [i for i, output in enumerate(outputs) if output.spread]
    fixed = len(outputs) - len(spreads)
    if len(spreads) > 1 or fixed > count or (not spreads and fixed != count):
        return [UNKNOWN] * count
    if spreads:
        at = spreads[0]
        width = count - fixed
        expanded = [*outputs[:at], *([outputs[at]] * width), *outputs[at + 1 :]]
    else:
        expanded = list(outputs)
    for lineage, name in zip(expanded, names, strict=True):
        if lineage.name is not None and not lineage.spread and lineage.name != name:
            return [UNKNOWN] * count
    return expanded


class SessionMasking:
    """One session's masking: its engine, and the cursors and prepared statements it declared.

    A statement that changes the catalog (CREATE, ALTER, DROP, a view replaced, a column
    renamed) makes the catalog the analysis reads out of date: this session masks every
    column it reads from then on, and unless only temporary objects changed (which no
    other session sees), the shared snapshot is dropped and marked stale
    (``on_catalog_change``), so the next session reads it again and every session still
    holding it masks every column it reads from then on
    (a relayed session cannot read the catalog again midway; a new session sees the
    change). A change made outside the gateway is seen when the snapshot is next read
    (:data:`sqlgate.access.catalog.SNAPSHOT_TTL`).
    """

    def __init__(self, engine: MaskingEngine, on_catalog_change: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.on_catalog_change = on_catalog_change
        self.cursors: dict[str, tuple[Outputs, bool]] = {}  # name -> (outputs, WITH HOLD)
        self.prepared: dict[str, Outputs] = {}
        self.catalog_changed = False

    def statements(self, sql: str) -> tuple[str | None, list[Outputs]]:
        """A refusal for ``sql`` (or None), and each statement's outputs, with session state applied in order."""
        analysis = self.engine.analyze(sql)
        refusal = self.engine.refusal(analysis)
        if refusal is not None:
            return refusal, []
        changes = {statement.catalog_change for statement in analysis.statements} - {None}
        if changes:
            self.catalog_changed = True
            if "database" in changes and self.on_catalog_change is not None:
                self.on_catalog_change()
        outputs = [self.observe(statement) for statement in analysis.statements]
        if self.catalog_changed or self.engine.catalog.stale:
            return None, [None if out is None else UNKNOWN_OUTPUTS for out in outputs]
        return None, outputs

    def observe(self, statement: StatementLineage) -> Outputs:
        """Remember what ``statement`` declares, prepares or closes; return the outputs it produces."""
        if statement.declares is not None:
            self.cursors[statement.declares] = (statement.outputs, statement.holds)
            return None
        if statement.prepares is not None:
            self.prepared[statement.prepares] = statement.outputs
            return None
        if statement.closes is not None:
            self._close(statement)
            return None
        if statement.fetches is not None:
            found = self.cursors.get(statement.fetches)
            return found[0] if found is not None else UNKNOWN_OUTPUTS
        if statement.executes is not None:
            return self.prepared.get(statement.executes, UNKNOWN_OUTPUTS)
        return statement.outputs

    def _close(self, statement: StatementLineage) -> None:
        name = statement.closes
        table: dict[str, Any] = self.prepared if statement.kind == "DeallocateStmt" else self.cursors
        if name == "*":
            table.clear()
        else:
            table.pop(name or "", None)

    def transaction_ended(self) -> None:
        """Cursors without WITH HOLD end with their transaction (a later one may reuse the name)."""
        self.cursors = {name: entry for name, entry in self.cursors.items() if entry[1]}

    def plan(self, outputs: Outputs, columns: Sequence[tuple[str, bool]]) -> Plan:
        """See :meth:`MaskingEngine.plan`."""
        return self.engine.plan(outputs, columns)


def mask_data_row(payload: memoryview, plan: Plan | None) -> bytes:
    """A whole DataRow message with the plan's columns rewritten; every column NULL when ``plan`` is None."""
    values = data_row_values(payload)
    parts = [_INT16.pack(len(values))]
    for index, value in enumerate(values):
        out: bytes | None
        if plan is None:
            out = None
        else:
            column = plan.get(index)
            out = value if column is None or value is None else _masked_bytes(column, value)
        parts.append(_NULL if out is None else _INT32.pack(len(out)) + out)
    body = b"".join(parts)
    return b"D" + _INT32.pack(len(body) + 4) + body


def _masked_bytes(column: ColumnMask, value: bytes) -> bytes | None:
    if column.function is None:
        return None if column.replacement is None else column.replacement.encode()
    result = column.function(value.decode("utf-8", "replace"))
    return None if result is None else result.encode()


def mask_value(column: ColumnMask, value: Any, text: str | None) -> Any:
    """One decoded value (the API's), masked; ``text`` is its text form when the column's type is text-like."""
    if value is None:
        return None
    if column.function is None:
        return column.replacement
    return column.function(text) if text is not None else None


class MaskingService:
    """The gateway's masking: catalogs per database and engines per (rules, catalog), shared by every front end."""

    _MAX_ENGINES = 256

    def __init__(self, hash_key: bytes) -> None:
        from sqlgate.access.catalog import Catalogs  # noqa: PLC0415 - catalog imports pgwire I/O helpers

        self.hash_key = hash_key
        self.catalogs = Catalogs()
        self._engines: dict[tuple[tuple[tuple[str, str], ...], int], tuple[CatalogModel, MaskingEngine]] = {}

    def engine(self, mask: Mapping[str, str], catalog: CatalogModel) -> MaskingEngine:
        """The engine for a grant's ``mask`` over ``catalog`` (built once per pair)."""
        key = (tuple(sorted(mask.items())), id(catalog))
        entry = self._engines.get(key)
        if entry is None or entry[0] is not catalog:
            if len(self._engines) >= self._MAX_ENGINES:
                self._engines.clear()
            entry = self._engines[key] = (catalog, MaskingEngine(MaskRules(mask, hash_key=self.hash_key), catalog))
        return entry[1]

    async def session(
        self, alias: str, mask: Mapping[str, str], read: Callable[[], Awaitable[CatalogModel]], *, refresh: bool = False
    ) -> SessionMasking:
        """A session's masking for database ``alias`` under ``mask`` (the catalog read with ``read`` when stale)."""
        catalog = await self.catalogs.get(alias, read, refresh=refresh)
        return SessionMasking(self.engine(mask, catalog), lambda: self.catalogs.invalidate(alias))
