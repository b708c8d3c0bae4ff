"""classify(): SQL text -> :class:`Classification`, remembered in bounded LRU caches.

Two caches: the exact text (a hit costs a dictionary look-up), then the text's
shape. For everyday DML the shape comes from :func:`~sqlgate.policy.sql.shape.literal_shape`
(literals replaced without parsing, a few microseconds); otherwise it is the text
with its constants replaced by ``$n`` (pglast's normalize, the statement's
fingerprint with names kept), so ``... WHERE id = 1`` and ``... WHERE id = 2``
share one entry. pglast's hashed fingerprint is not used as the key because it
also drops schema and prepared-statement names: ``SELECT * FROM hr.salaries``
would reuse the classification of ``SELECT * FROM salaries``. A classification
that depends on a constant (the setting a ``set_config`` call changes) is never
stored under the normalized key; nor is one whose setting name is a bind
parameter (``set_config('role', $1, ...)`` and ``set_config($2, $1, ...)``
normalize alike), which the exact-text cache still remembers.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import suppress
from threading import Lock

from sqlgate.policy.sql.mysql import classify_mysql
from sqlgate.policy.sql.postgres import classify_postgres, normalized
from sqlgate.policy.sql.result import Classification, Dialect
from sqlgate.policy.sql.shape import literal_shape

DEFAULT_CACHE_SIZE = 10_000
MAX_CACHED_TEXT = 2048  # longer texts are classified every time: the caches stay below ~20 MB each


class ClassificationCache:
    """A bounded least-recently-used map; safe to share between threads."""

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        self.size = size
        self._mind_order_from = size * 3 // 4
        self._items: OrderedDict[tuple[str, str], Classification] = OrderedDict()
        self._lock = Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> Classification | None:
        """The entry for ``key`` (marked as recently used once the cache is nearly full), or None."""
        items = self._items
        item = items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        if len(items) >= self._mind_order_from:  # recency only matters when eviction is near
            with suppress(KeyError):  # evicted by another thread meanwhile
                items.move_to_end(key)
        return item

    def put(self, key: tuple[str, str], value: Classification) -> None:
        """Remember ``value``, evicting the least recently used entry when full."""
        with self._lock:
            self._items[key] = value
            if len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_by_text = ClassificationCache()
_by_shape = ClassificationCache()


def classify(sql: str, dialect: Dialect = "postgres") -> Classification:
    """Classify every statement of ``sql``; never raises for any text (unparsable text sets ``error``)."""
    key = (dialect, sql)
    hit = _by_text.get(key)
    if hit is not None:
        return hit
    quick = literal_shape(sql) if dialect == "postgres" and len(sql) <= MAX_CACHED_TEXT else None
    if quick is not None:  # remembered by shape only: texts with their values in them rarely come back
        hit = _by_shape.get(("postgres-literals", quick))
        if hit is not None:
            return hit
    result = _classify_uncached(sql, dialect)
    if quick is not None and result.parsed and result.cacheable:
        _by_shape.put(("postgres-literals", quick), result)
    elif len(sql) <= MAX_CACHED_TEXT:
        _by_text.put(key, result)
    return result


def _classify_uncached(sql: str, dialect: Dialect) -> Classification:
    if dialect == "mysql":
        return classify_mysql(sql)
    if dialect != "postgres":
        raise ValueError(f"unknown SQL dialect {dialect!r} (postgres or mysql)")
    shape = normalized(sql)
    if shape is not None and len(shape) <= MAX_CACHED_TEXT:
        hit = _by_shape.get(("postgres", shape))
        if hit is not None:
            return hit
    result = classify_postgres(sql)
    if shape is not None and len(shape) <= MAX_CACHED_TEXT and result.parsed and result.cacheable:
        _by_shape.put(("postgres", shape), result)
    return result


def uncached_classify(sql: str, dialect: Dialect = "postgres") -> Classification:
    """Classify without touching the caches (benchmarks and tests)."""
    return classify_postgres(sql) if dialect == "postgres" else classify_mysql(sql)


def clear_caches() -> None:
    """Forget every remembered classification."""
    _by_text.clear()
    _by_shape.clear()
