"""KILL QUERY for a session's own server thread, over an admin connection of the database.

A MySQL client cancels by opening a second connection and sending ``KILL QUERY
<id>`` with the connection id it saw in the greeting (the mysql CLI on Ctrl-C does
this). Through the gateway that id is the gateway's own; the listener maps it to the
session, checks that the caller is the same identity as the session's owner, and
kills the session's server thread with the database's admin login (a minted
login may lack the right to kill, and the id the server knows is not the client's).
"""

from __future__ import annotations

import logging

import asyncmy
from asyncmy.errors import Error as MysqlError

from sqlgate.config import DatabaseConfig

log = logging.getLogger(__name__)
KILL_TIMEOUT = 10


async def kill_thread(config: DatabaseConfig, thread_id: int, *, query_only: bool) -> bool:
    """``KILL QUERY <thread_id>`` (or ``KILL CONNECTION``) as the admin; False when it could not be done."""
    statement = f"KILL {'QUERY' if query_only else 'CONNECTION'} {int(thread_id)}"
    try:
        conn = await asyncmy.connect(
            host=config.host,
            port=config.port,
            user=config.admin_user,
            password=config.admin_password_value(),
            connect_timeout=KILL_TIMEOUT,
            autocommit=True,
        )
    except (MysqlError, OSError) as exc:
        log.warning("could not reach %s:%s to cancel a query: %s", config.host, config.port, exc)
        return False
    try:
        async with conn.cursor() as cur:
            await cur.execute(statement)
    except MysqlError as exc:
        log.info("KILL of server thread %s failed: %s", thread_id, exc)
        return False
    finally:
        conn.close()
    return True
