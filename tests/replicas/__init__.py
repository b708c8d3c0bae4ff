"""Tests of several replicas acting as one gateway (mirrors src/sqlgate/replicas)."""
