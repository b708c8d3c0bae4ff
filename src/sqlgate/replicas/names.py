"""The name and instance id of the replica running in this process."""

from __future__ import annotations

import secrets
import socket

from sqlgate.config import Settings

INSTANCE_ID = secrets.token_hex(8)
"""Random per process start: two runs of one replica name are told apart."""


def replica_name(settings: Settings) -> str:
    """``server.replica_name``, else the host name (a Kubernetes pod's name)."""
    return settings.server.replica_name or socket.gethostname()
