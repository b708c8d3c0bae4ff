"""Log output: text for people, or one JSON object a line (``log.format: json``) for log shippers.

A JSON line holds ``time``, ``level``, ``logger``, ``message``, ``replica`` and,
when the record was written while serving a session, ``session_id``,
``principal``, ``database`` and ``lease_id`` (the same ids traces and audit
records carry), plus ``exception`` with the traceback when there is one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from sqlgate.config import Settings
from sqlgate.replicas.names import replica_name
from sqlgate.sessions import current_session

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object."""

    def __init__(self, replica: str) -> None:
        super().__init__()
        self.replica = replica

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line, with the current session's ids when there is one."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "replica": self.replica,
        }
        session = current_session.get()
        if session is not None:
            line["session_id"] = session.id
            line["principal"] = session.principal.key
            line["database"] = session.database
            line["lease_id"] = session.lease_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(settings: Settings) -> None:
    """Set up the root logger from ``log_level`` and ``log.format``."""
    handler = logging.StreamHandler()
    if settings.log.format == "json":
        handler.setFormatter(JsonFormatter(replica_name(settings)))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration is noise at start-up
