"""The one access pipeline every front end calls: the wire proxy, the HTTP API and MCP, the console.

A front end only translates its protocol to and from these steps; each rule
(masking, a guardrail, an audit field) exists once, here:

- :mod:`.masking`: plan and apply masking from column lineage (never from the SQL text),
  and the refusals a grant that masks data needs (laundering, opaque statements);
- :mod:`.scrub`: error and notice texts without values, when the grant masks anything;
- :mod:`.catalog`: the database catalog the lineage analysis reads, cached per database.
"""
