"""Broker backends, one per database engine, behind the :class:`~sqlgate.broker.backends.base.Backend` protocol."""

from __future__ import annotations

from sqlgate.broker.backends.base import Backend, FoundLogin, MintSpec
from sqlgate.config import DatabaseConfig


def create_backend(config: DatabaseConfig) -> Backend:
    """The backend for ``config.engine``."""
    if config.engine == "postgres":
        from sqlgate.broker.backends.postgres import PostgresBackend  # noqa: PLC0415 - each engine loads its driver

        return PostgresBackend(config)
    if config.engine == "mysql":
        from sqlgate.broker.backends.mysql import MysqlBackend  # noqa: PLC0415 - each engine loads its driver

        return MysqlBackend(config)
    from sqlgate.broker.backends.cloudsql import CloudSqlBackend  # noqa: PLC0415 - each engine loads its driver

    return CloudSqlBackend(config)


__all__ = ["Backend", "FoundLogin", "MintSpec", "create_backend"]
