"""AnswerHold: a statement's answer waits for its record's hand-over, in order; without a durable one, nothing waits."""

from __future__ import annotations

from sqlgate.access.answers import AnswerHold


class Handover:
    """The audit log's side: ``durable_handover`` and callbacks run once the records are in the pipe."""

    def __init__(self, *, durable: bool) -> None:
        self.durable_handover = durable
        self.waiting: list = []

    def after_handover(self, callback) -> None:
        self.waiting.append(callback)

    def hand_over(self) -> None:
        waiting, self.waiting = self.waiting, []
        for callback in waiting:
            callback()


class Relay:
    def __init__(self, hold: AnswerHold) -> None:
        self.statement_count = 0
        self.hold = hold

    def feed(self, data: bytes) -> None:
        if data.startswith(b"done"):
            self.statement_count += 1
        self.hold.send(data)


def test_an_answer_that_completes_a_statement_waits_for_the_hand_over():
    written: list[bytes] = []
    audit = Handover(durable=True)
    hold = AnswerHold(audit, written.append)
    relay = Relay(hold)
    hold.feed(relay, relay.feed, b"rows ")
    assert written == [b"rows "]  # nothing finished: straight through
    hold.feed(relay, relay.feed, b"done 1")
    hold.feed(relay, relay.feed, b" more")  # held behind it, in order
    assert written == [b"rows "]
    audit.hand_over()
    assert written == [b"rows ", b"done 1 more"]


def test_without_a_durable_hand_over_nothing_waits():
    written: list[bytes] = []
    hold = AnswerHold(Handover(durable=False), written.append)
    relay = Relay(hold)
    hold.feed(relay, relay.feed, b"done 1")
    assert written == [b"done 1"]
