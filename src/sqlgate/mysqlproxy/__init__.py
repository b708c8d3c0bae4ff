"""The MySQL/MariaDB wire listener: the same identity, policy, broker, guardrails, masking and audit as pgwire.

- :mod:`.listener`: binds ``listen.mysql``, accepts clients, knows each session by the
  connection id its client saw (for KILL);
- :mod:`.connection`: one client: TLS, login with a token, decision, lease, upstream, lifetime;
- :mod:`.upstream`: the connection to the server, logged in with the lease's login;
- :mod:`.relay`: sans-IO: commands checked, replies masked, one statement record per statement;
- :mod:`.statements`: what may run (guardrails through :mod:`sqlgate.access.statements`);
- :mod:`.masking`: masking by column origin (column definitions) and the statement's parse;
- :mod:`.cancel`: KILL QUERY for a session's own server thread, over an admin connection.

The codec is :mod:`sqlgate.mywire`.
"""
