"""The state database: leases, access requests, sessions and the audit log.

SQLAlchemy Core over an async engine: SQLite (WAL) in ``data_dir`` by default,
PostgreSQL when several replicas share state. The schema is owned by Alembic
migrations in ``migrations/versions``, applied at start-up. Each package that
stores something declares its tables on :data:`sqlgate.store.tables.metadata`
in its own ``tables.py`` and ships its migration as its own Alembic branch off
the foundation revision, so packages do not edit each other's schema.
"""

from sqlgate.store.engine import StateStore, async_url

__all__ = ["StateStore", "async_url"]
