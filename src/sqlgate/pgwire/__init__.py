"""pgwire: the PostgreSQL wire protocol, sans-IO (bytes in, messages out, and back)."""
