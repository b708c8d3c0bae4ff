"""Broker: short-lived database logins per identity, with renewal, revocation and reaping.

``Broker(settings, store, auditor)`` hands out :class:`Lease` objects and their
:class:`Credential`; backends per engine live in :mod:`sqlgate.broker.backends`;
:class:`Reaper` cleans up expired leases and orphaned logins; admin secrets are
rotated by :func:`sqlgate.broker.rotation.rotate_admin`.
"""

from sqlgate.broker.broker import Broker
from sqlgate.broker.lease import Credential, Lease, LeaseState
from sqlgate.broker.reaper import Reaper, ReapReport

__all__ = ["Broker", "Credential", "Lease", "LeaseState", "ReapReport", "Reaper"]
