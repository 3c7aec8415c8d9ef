"""DurableProducer: after a fatal idempotence error the next send goes to a fresh producer.

The broker side of this (a Kafka restart with batches in flight) is exercised by
tests/faults; here a scripted stand-in for AIOKafkaProducer pins down the renewal logic.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber

from learnerledger.kafka.producer import DurableProducer


class ScriptedProducer:
    """Answers each send with the next outcome of ``outcomes`` (an exception or a value)."""

    def __init__(self, outcomes: list[Any], start_error: Exception | None = None) -> None:
        self.outcomes = outcomes
        self.start_error = start_error
        self.sent: list[bytes] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, **record: Any) -> asyncio.Future[Any]:
        self.sent.append(record["value"])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
        return future


def producers(*made: ScriptedProducer) -> tuple[DurableProducer, list[ScriptedProducer]]:
    queue = list(made)
    used: list[ScriptedProducer] = []

    def factory() -> Any:
        used.append(queue.pop(0))
        return used[-1]

    return DurableProducer(factory, "test"), used


async def test_out_of_order_sequence_renews_the_producer_for_the_next_send() -> None:
    durable, used = producers(
        ScriptedProducer(["ok-1", OutOfOrderSequenceNumber()]), ScriptedProducer(["ok-2"])
    )
    await durable.start()
    assert await durable.send_and_wait("t", value=b"a") == "ok-1"
    with pytest.raises(OutOfOrderSequenceNumber):  # this caller is not told "stored"
        await durable.send_and_wait("t", value=b"b")
    assert await durable.send_and_wait("t", value=b"b") == "ok-2"
    await durable.stop()
    first, second = used
    assert (first.sent, second.sent) == ([b"a", b"b"], [b"b"])
    assert first.stopped
    assert second.started
    assert second.stopped


async def test_ordinary_errors_keep_the_producer() -> None:
    durable, used = producers(ScriptedProducer([KafkaConnectionError(), "ok"]))
    await durable.start()
    with pytest.raises(KafkaConnectionError):
        await durable.send_and_wait("t", value=b"a")
    assert await durable.send_and_wait("t", value=b"a") == "ok"
    assert len(used) == 1


async def test_a_renewal_that_cannot_start_is_tried_again_on_the_next_send() -> None:
    durable, used = producers(
        ScriptedProducer([OutOfOrderSequenceNumber()]),
        ScriptedProducer([], start_error=KafkaConnectionError()),
        ScriptedProducer(["ok"]),
    )
    await durable.start()
    with pytest.raises(OutOfOrderSequenceNumber):
        await durable.send_and_wait("t", value=b"a")
    with pytest.raises(KafkaConnectionError):  # Kafka still down: the caller hears so
        await durable.send_and_wait("t", value=b"a")
    assert await durable.send_and_wait("t", value=b"a") == "ok"
    assert len(used) == 3
