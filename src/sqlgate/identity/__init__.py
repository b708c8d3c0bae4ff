"""Identity: turn a token into a verified :class:`Principal`.

Pure where it can be: token parsing and claim checks (:mod:`.jwt`,
:mod:`.claims`, :mod:`.mapping`, :mod:`.keys`) do no I/O; fetching discovery
documents and keys (:mod:`.remote`) and calling STS (:mod:`.aws`) happen at the
edges. :class:`Authenticator` is the one entry point; :mod:`.devissuer` is the
built-in issuer for demos, :mod:`.client` the signed-in user's side.
"""

from sqlgate.identity.authenticator import Authenticator
from sqlgate.identity.jwt import MAX_TOKEN_BYTES, fingerprint
from sqlgate.identity.principal import AuthMethod, Principal

__all__ = ["MAX_TOKEN_BYTES", "AuthMethod", "Authenticator", "Principal", "fingerprint"]
