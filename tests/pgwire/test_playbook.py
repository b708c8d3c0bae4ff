"""The Playbook helper itself: it must fail when the machine does something the script does not say."""

from __future__ import annotations

import pytest

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.actions import Send
from sqlgate.pgwire.client_handshake import ClientHandshake
from sqlgate.pgwire.startup import SSLRequest

from .playbook import Call, Data, Playbook, Raises


def machine():
    return ClientHandshake(tls_available=False)


def test_matching_script_passes():
    assert Playbook(machine()) >> Data(SSLRequest().encode()) << Send(b"N")


def test_wrong_action_fails_with_a_transcript():
    with pytest.raises(AssertionError, match=r"(?s)<< Send\(data=b'N'\).*!! expected \[Send\(data=b'S'\)\]"):
        bool(Playbook(machine()) >> Data(SSLRequest().encode()) << Send(b"S"))


def test_missing_action_fails():
    with pytest.raises(AssertionError, match="expected"):
        bool(Playbook(machine()) >> Data(SSLRequest().encode()))


def test_unexpected_exception_fails():
    with pytest.raises(AssertionError, match="raised"):
        bool(Playbook(machine()) >> Data(b"\x00\x00\x00\x01"))


def test_expected_exception_that_does_not_come_fails():
    with pytest.raises(AssertionError, match="expected"):
        bool(Playbook(machine()) >> Data(SSLRequest().encode()) << Raises(ProtocolError))


def test_expected_exception_passes():
    assert Playbook(machine()) >> Data(b"\x00\x00\x00\x01") << Raises(ProtocolError, "invalid startup")


def test_calls_reach_the_machine():
    with pytest.raises(AssertionError, match="RuntimeError"):
        bool(Playbook(machine()) >> Call("request_password"))


def test_script_must_start_with_an_event():
    with pytest.raises(AssertionError, match="starts with an event"):
        Playbook(machine()) << Send(b"N")
