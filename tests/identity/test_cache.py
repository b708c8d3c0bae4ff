"""The principal cache: expiry, least-recently-used eviction, size zero."""

from __future__ import annotations

from sqlgate.identity.cache import PrincipalCache
from sqlgate.identity.principal import Principal


def principal(name):
    return Principal(subject=name, issuer="i", name=name)


def test_expiry():
    cache = PrincipalCache(10)
    cache.put(b"a", principal("a"), valid_until=100.0)
    assert cache.get(b"a", 99.0).principal.subject == "a"
    assert cache.get(b"a", 100.0) is None
    assert len(cache) == 0


def test_least_recently_used_goes_first():
    cache = PrincipalCache(2)
    cache.put(b"a", principal("a"), 100.0)
    cache.put(b"b", principal("b"), 100.0)
    cache.get(b"a", 0.0)
    cache.put(b"c", principal("c"), 100.0)
    assert cache.get(b"b", 0.0) is None
    assert cache.get(b"a", 0.0) is not None


def test_replace_keeps_expiry():
    cache = PrincipalCache(2)
    cache.put(b"a", principal("a"), 100.0)
    cache.replace(b"a", principal("a2"))
    cache.replace(b"missing", principal("x"))
    assert cache.get(b"a", 50.0).principal.subject == "a2"
    assert cache.get(b"a", 100.0) is None
    assert len(cache) == 0


def test_size_zero_caches_nothing():
    cache = PrincipalCache(0)
    cache.put(b"a", principal("a"), 100.0)
    assert cache.get(b"a", 0.0) is None
