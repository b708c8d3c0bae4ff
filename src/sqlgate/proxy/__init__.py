"""proxy: the PostgreSQL wire listener, the only socket code for pgwire.

A client talks to the gateway as it would to PostgreSQL, and every driver in
``tests/compat`` (node-postgres, postgres.js, pgjdbc, psycopg 3, psycopg2, asyncpg,
SQLAlchemy, Django, psql) and psycopg 3.3.4's own test suite behave as they do
against the server. What a client can still tell apart, and why:

- **The login name.** The client connects as its identity's name; the server
  session runs as the login minted for it (``current_user`` is ``<prefix>_<name>_<hex>``),
  so that nobody holds a database password. Objects a session creates belong to
  that login until the lease ends and the broker hands them to the database's owner
  role; a second identity's login cannot use them before then.
- **The cancel key.** ``BackendKeyData`` carries the server's real process id but a
  secret of the gateway's own, so a CancelRequest must come through the gateway,
  which checks it and forwards the server's key.
- **Refusals and masks.** Guardrails answer 42501 (``error.rule`` names the rule)
  before a statement reaches the server; masked values and scrubbed error texts
  differ from the server's by design.
- **A refused Parse in an extended batch** ends the statements before it with the
  client's Sync (committed when in an implicit transaction) where PostgreSQL would
  roll them back (see ``relay``).
- **Not offered:** GSSAPI encryption (GSSENCRequest is answered ``N``, as a server
  without it does), direct TLS without SSLRequest (``sslnegotiation=direct``), and
  replication connections (0A000).
- **TLS records** are at most 8 KiB, as PostgreSQL writes them (``connection.TLS_WRITE_SIZE``):
  libpq 18.0 could otherwise stall on a larger record.
"""
