"""A wire login's user name: the caller, a privilege level or its database role, and nothing else."""

from __future__ import annotations

import pytest

from sqlgate.access.decide import requested_role
from sqlgate.errors import IdentityError
from sqlgate.identity.principal import Principal

ALICE = Principal(subject="u-123", issuer="https://idp", name="alice", email="alice@example.com")
ROLES = {"read": "shop_read", "write": "shop_write"}


@pytest.mark.parametrize("user", ["u-123", "alice", "alice@example.com", ""])
def test_the_callers_own_names_let_policy_pick_the_role(user):
    assert requested_role(ALICE, user, ROLES) is None


@pytest.mark.parametrize(("user", "level"), [("read", "read"), ("write", "write"), ("shop_write", "write")])
def test_a_level_or_its_database_role_asks_for_that_level(user, level):
    assert requested_role(ALICE, user, ROLES) == level


@pytest.mark.parametrize("user", ["bob", "postgres", "root", "alice@example.org", "ALICE", "shop_admin"])
def test_any_other_name_is_refused_naming_the_levels(user):
    with pytest.raises(IdentityError) as refused:
        requested_role(ALICE, user, ROLES, quote='"')
    assert f'user "{user}" does not match' in refused.value.message
    assert "read, write" in (refused.value.hint or "")
