"""Broker: short-lived database logins per identity, with renewal, revocation and reaping."""
