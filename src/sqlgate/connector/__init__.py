"""connector: a library for applications — pools whose short-lived credentials refresh themselves."""
