"""sqlgate: an identity-aware gateway for SQL databases.

Callers present short-lived identity tokens instead of database passwords;
sqlgate verifies them (:mod:`sqlgate.identity`), decides by policy
(:mod:`sqlgate.policy`), mints a short-lived database login
(:mod:`sqlgate.broker`), relays the session (:mod:`sqlgate.proxy`,
:mod:`sqlgate.api`) and records everything in a verifiable audit log
(:mod:`sqlgate.audit`). :mod:`sqlgate.connector` gives applications the same.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sqlgate")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
