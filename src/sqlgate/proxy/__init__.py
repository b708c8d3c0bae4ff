"""proxy: the PostgreSQL wire listener, the only socket code for pgwire."""
