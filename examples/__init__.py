"""Examples of applications built on sqlgate."""
