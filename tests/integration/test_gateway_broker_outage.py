"""The gateway while its Kafka broker is down, on a private stack (the shared one is left alone):
callers get UNAVAILABLE within the configured bound, never an ack for an unstored event, and
succeed again once the broker is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import grpc
import pytest
from aiokafka import AIOKafkaConsumer

from learnerledger.kafka.codec import decode_completion_event
from learnerledger.kafka.security import client_options
from learnerledger.kafka.topics import TopicSpec, ensure_topics
from learnerledger.postgres import catalog
from learnerledger.postgres.migrations import migrate
from learnerledger.v1 import issuer_gateway_pb2 as pb
from learnerledger.v1 import issuer_gateway_pb2_grpc
from learnerledger_devstack.stack import StackConfig, StackInfo, stack_up
from tests.conftest import own_servers_only, private_stack
from tests.support.gateway import auth, collect, completion, running_gateway
from tests.support.ledger import seed_catalog

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEND_TIMEOUT_S = 2.0
TOPIC = "completions.v1.outage"


@pytest.fixture(scope="module")
def outage_stack() -> Iterator[tuple[StackConfig, StackInfo]]:
    with private_stack("ll-outage-") as stack:
        yield stack


async def accepted_events(bootstrap: str) -> set[str]:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        **client_options(),
    )
    await consumer.start()
    seen: set[str] = set()
    try:
        end = await consumer.end_offsets(list(consumer.assignment()))
        while [tp for tp, offset in end.items() if await consumer.position(tp) < offset]:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                seen.update(
                    str(decode_completion_event(m.value).envelope.event_id) for m in messages
                )
    finally:
        await consumer.stop()
    return seen


async def test_broker_down_gives_unavailable_in_time_and_recovers(
    outage_stack: tuple[StackConfig, StackInfo],
) -> None:
    cfg, info = outage_stack
    await migrate(info.database_url)
    await seed_catalog(info.database_url)
    connection = await asyncpg.connect(info.database_url)
    _, token = await catalog.issue_token(connection, catalog.PrincipalKind.ISSUER, "swayam")
    await connection.close()
    await ensure_topics(info.kafka_bootstrap, [TopicSpec(TOPIC, 3, -1)])
    topics = SimpleNamespace(
        completions=TOPIC,
        ledger_entries="ledger.entries.v1.outage",
        completions_dlq="completions.dlq.v1.outage",
        partitions=3,
    )
    acked: list[str] = []
    async with running_gateway(
        info.kafka_bootstrap, info.database_url, topics, send_timeout_s=SEND_TIMEOUT_S
    ) as (_, channel):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        first = await stub.SubmitCompletion(
            pb.SubmitCompletionRequest(completion=completion("before")), metadata=auth(token)
        )
        acked.append(first.event_id)

        cfg.kafka().stop(cfg.stop_timeout)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await stub.SubmitCompletion(
                pb.SubmitCompletionRequest(completion=completion("during")), metadata=auth(token)
            )
        waited = time.monotonic() - started
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        assert waited < SEND_TIMEOUT_S + 3, f"answered after {waited:.1f}s"

        async def two() -> AsyncIterator[pb.StreamCompletionsRequest]:
            for n in range(2):
                yield pb.StreamCompletionsRequest(completion=completion(f"during-stream-{n}"))

        answers: list[Any] = []
        with pytest.raises(grpc.aio.AioRpcError) as stream_down:
            await collect(stub.StreamCompletions(two(), metadata=auth(token)), answers)
        assert stream_down.value.code() == grpc.StatusCode.UNAVAILABLE
        assert [a for a in answers if a.status == pb.ACCEPTANCE_STATUS_ACCEPTED] == []

        with own_servers_only():
            stack_up(cfg)  # the broker comes back (PostgreSQL kept running)
        retried = None
        async with asyncio.timeout(90):
            while retried is None:
                try:
                    retried = await stub.SubmitCompletion(
                        pb.SubmitCompletionRequest(completion=completion("during")),
                        metadata=auth(token),
                    )
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await asyncio.sleep(1)
        assert retried.status == pb.ACCEPTANCE_STATUS_ACCEPTED
        acked.append(retried.event_id)

    stored = await accepted_events(info.kafka_bootstrap)
    assert set(acked) <= stored  # every ack names an event that is in the topic
