"""Migrations of the compatibility suite's Django app."""
