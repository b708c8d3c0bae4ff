"""The MySQL/MariaDB wire listener: the same identity, policy, broker, guardrails, masking and audit as pgwire.

- :mod:`.listener`: binds ``listen.mysql``, accepts clients, knows each session by the
  connection id its client saw (for KILL);
- :mod:`.connection`: one client: TLS, login with a token, decision, lease, upstream, lifetime;
- :mod:`.upstream`: the connection to the server, logged in with the lease's login;
- :mod:`.relay`: sans-IO: commands checked, replies masked, one statement record per statement;
- :mod:`sqlgate.access.mysql`: what may run and masking by column origin (shared with the HTTP API);
- :mod:`.catalog`: the session's catalog for masking, read on its upstream;
- :mod:`.cancel`: KILL QUERY for a session's own server thread, over an admin connection.

The codec is :mod:`sqlgate.mywire`.
"""
