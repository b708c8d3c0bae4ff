"""A minimal Django app for the compatibility suite: one model, one migration (see tests/compat/test_django.py)."""
