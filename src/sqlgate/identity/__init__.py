"""Identity: turn a token into a verified :class:`Principal`.

Pure where it can be: token parsing and claim checks do no I/O; fetching
discovery documents and keys, and calling STS, happen at the edges.
"""

from sqlgate.identity.principal import AuthMethod, Principal

__all__ = ["AuthMethod", "Principal"]
