"""MySQL/MariaDB statements and masking, pure, for every front end that serves a MySQL database.

The MySQL listener (:mod:`sqlgate.mysqlproxy`) and the HTTP query API and MCP tools
(:mod:`sqlgate.api`) check and mask with these same modules:

- :mod:`.statements`: what may run (guardrails through :mod:`sqlgate.access.statements`,
  and this protocol's rules: USE, LOAD DATA LOCAL INFILE, KILL);
- :mod:`.masking`: masking by column origin (column definitions) and the statement's parse;
- :mod:`.tracing`: column lineage by scope through views, derived tables and CTEs;
- :mod:`.catalog`: what masking knows of the database (base tables, view definitions)
  and the query that reads it.
"""
