"""Sans-IO MySQL/MariaDB client/server protocol: bytes <-> packets and messages, login state machines. No sockets.

- :mod:`.packets`: framing, sequence ids, 16 MiB continuation;
- :mod:`.buffer`: integers and length-encoded values;
- :mod:`.constants`: capability flags, commands, status flags, column types;
- :mod:`.handshake`: HandshakeV10, SSLRequest, HandshakeResponse41, auth switch, auth more data;
- :mod:`.auth`: mysql_native_password, caching_sha2_password (with RSA), mysql_clear_password;
- :mod:`.results`: OK, ERR, EOF, column definitions, text and binary rows, COM_STMT_PREPARE_OK;
- :mod:`.commands`: the client's commands (COM_QUERY, COM_STMT_*, COM_INIT_DB, ...);
- :mod:`.server_login` and :mod:`.upstream_login`: the two logins a relayed session runs,
  as state machines that take bytes and return :mod:`.actions`.

Every decoder raises :class:`sqlgate.errors.ProtocolError` on bytes that break the protocol.
"""
