"""Tests of the web console (sqlgate.console)."""
