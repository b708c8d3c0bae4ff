"""An example FastAPI app on the sqlgate connector: customers see only their own orders (row-level security)."""
