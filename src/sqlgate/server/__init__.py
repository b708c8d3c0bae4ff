"""server: assemble the gateway from settings and run it (``sqlgate serve`` and ``sqlgate up``).

The composition root: the only place that knows every package. It builds the
services (state store, audit log, authenticator, policy, broker), starts the HTTP
API and the PostgreSQL listener in one event loop, and stops them in order.
"""
