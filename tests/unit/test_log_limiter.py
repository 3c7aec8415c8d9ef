"""RepeatedLineLimiter: a library's flood of identical lines becomes one line per window."""

from __future__ import annotations

import logging

from learnerledger.observability import RepeatedLineLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_within_the_window_are_suppressed_and_counted() -> None:
    clock = Clock()
    limiter = RepeatedLineLimiter(window_s=10.0, clock=clock)
    flood = [record("aiokafka", "Unable connect to node with id %s: %s", 1, n) for n in range(500)]

    passed = [r for r in flood if limiter.filter(r)]
    assert passed == [flood[0]]

    clock.now += 10.0
    later = record("aiokafka", "Unable connect to node with id %s: %s", 1, "refused")
    assert limiter.filter(later)
    assert later.getMessage() == (
        "Unable connect to node with id 1: refused (and 499 more like it in the last 10s)"
    )


def test_different_lines_and_other_loggers_pass() -> None:
    limiter = RepeatedLineLimiter(window_s=10.0, clock=Clock())
    assert limiter.filter(record("aiokafka", "Unable to update metadata from %s", [1]))
    assert limiter.filter(record("aiokafka.consumer.fetcher", "Failed fetch messages from %s", 1))
    assert limiter.filter(record("aiokafka", "Unable to update metadata from %s", [1], level=30))
    # Not a Kafka client library: never limited.
    assert all(limiter.filter(record("learnerledger.ledger", "same line")) for _ in range(5))
    assert not limiter.filter(record("aiokafka", "Unable to update metadata from %s", [1]))
