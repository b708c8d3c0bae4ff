"""The type-byte constants agree with the message classes and with what the framer accepts."""

from __future__ import annotations

import pytest

from sqlgate.pgwire import auth, backend, frontend, notices
from sqlgate.pgwire.framing import BACKEND_TYPES, FRONTEND_TYPES
from sqlgate.pgwire.msgtypes import BackendType, FrontendType


def constants(namespace):
    return {name: value for name, value in vars(namespace).items() if name.isupper()}


def camel(name):
    return "".join(part.title() for part in name.split("_"))


@pytest.mark.parametrize(("namespace", "accepted"), [(FrontendType, FRONTEND_TYPES), (BackendType, BACKEND_TYPES)])
def test_constants_are_exactly_the_accepted_types(namespace, accepted):
    assert sorted(constants(namespace).values()) == sorted(accepted)


@pytest.mark.parametrize(
    ("namespace", "modules"),
    [(FrontendType, [frontend]), (BackendType, [backend, frontend, notices])],
)
def test_constants_match_message_classes(namespace, modules):
    """Each constant with a message class of the same name has that class's TYPE."""
    checked = 0
    for name, value in constants(namespace).items():
        cls = next((getattr(m, camel(name)) for m in modules if hasattr(m, camel(name))), None)
        if cls is not None:
            assert cls.TYPE[0] == value, name
            checked += 1
    assert checked >= len(constants(namespace)) - 2


def test_authentication_and_response_bytes():
    assert auth.AUTH[0] == BackendType.AUTHENTICATION
    assert auth.RESPONSE[0] == FrontendType.AUTH_RESPONSE
