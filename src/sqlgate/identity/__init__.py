"""Identity: turn a token into a verified :class:`Principal`.

Pure where it can be: token parsing and claim checks (:mod:`.jwt`,
:mod:`.claims`, :mod:`.mapping`, :mod:`.keys`) do no I/O; fetching discovery
documents and keys (:mod:`.remote`) and calling STS (:mod:`.aws`) happen at the
edges. :class:`Authenticator` is the one entry point; :mod:`.devissuer` is the
built-in issuer for demos, :mod:`.client` the signed-in user's side.

``Authenticator`` is imported on first use, so modules that only need
``Principal`` do not pay for HTTP and JOSE imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlgate.identity.principal import AuthMethod, Principal

if TYPE_CHECKING:
    from sqlgate.identity.authenticator import Authenticator

__all__ = ["AuthMethod", "Authenticator", "Principal"]


def __getattr__(name: str) -> Any:
    if name == "Authenticator":
        from sqlgate.identity.authenticator import Authenticator  # noqa: PLC0415 # lazy by design

        return Authenticator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
