"""Playbook: a handshake conversation as a script, after mitmproxy's ``tutils.Playbook``.

    assert (
        Playbook(ClientHandshake(tls_available=False))
        >> Data(SSLRequest().encode())
        << Send(b"N")
        >> Data(StartupMessage({"user": "alice"}).encode())
        << StartupReceived(...)
        >> Call("request_password")
        << send(AuthenticationCleartextPassword())
    )

``>>`` is something that happens to the machine (bytes arrive: :class:`Data`; the driver
decides: :class:`Call`); ``<<`` is an action the machine must return for the event
before it, in order, or :class:`Raises` for an exception. Running the script (``bool``)
compares each event's actions with what the script expects and fails with the whole
transcript on the first difference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlgate.pgwire.actions import Send


@dataclass(frozen=True)
class Data:
    """Bytes arrive from the peer."""

    data: bytes

    def __call__(self, machine: Any) -> list[Any]:
        return list(machine.receive(self.data))


@dataclass(frozen=True)
class Call:
    """The driver calls a method of the machine (a decision)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __init__(self, method: str, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", kwargs)

    def __call__(self, machine: Any) -> list[Any]:
        return list(getattr(machine, self.method)(*self.args, **self.kwargs) or [])


@dataclass(frozen=True)
class Raises:
    """The event before must raise ``exception`` with a message matching ``match``."""

    exception: type[BaseException]
    match: str = ""


def send(*messages: Any) -> Send:
    """One Send of these messages' bytes, concatenated."""
    return Send(b"".join(message.encode() for message in messages))


class Playbook:
    """A scripted conversation with one state machine."""

    def __init__(self, machine: Any) -> None:
        self.machine = machine
        self.steps: list[tuple[Any, list[Any]]] = []

    def __rshift__(self, event: Any) -> Playbook:
        self.steps.append((event, []))
        return self

    def __lshift__(self, expected: Any) -> Playbook:
        if not self.steps:
            raise AssertionError("a Playbook starts with an event (>>), not an expected action (<<)")
        self.steps[-1][1].append(expected)
        return self

    def __bool__(self) -> bool:
        transcript: list[str] = []
        for event, expected in self.steps:
            transcript.append(f">> {event!r}")
            raised = next((e for e in expected if isinstance(e, Raises)), None)
            try:
                actual = event(self.machine)
            except Exception as exc:
                if raised is None or not isinstance(exc, raised.exception) or not re.search(raised.match, str(exc)):
                    transcript.append(f"!! raised {exc!r}, expected {expected!r}")
                    raise AssertionError("\n".join(transcript)) from exc
                transcript.append(f"<< raised {exc!r}")
                continue
            transcript += [f"<< {action!r}" for action in actual]
            if raised is not None or actual != expected:
                transcript.append(f"!! expected {expected!r}")
                raise AssertionError("\n".join(transcript))
        return True
