"""api: the HTTP API, MCP server and metrics (FastAPI)."""
