"""The gateway while its Kafka broker is down, on a private stack (the shared one is left alone):
callers get UNAVAILABLE within the configured bound, never an ack for an unstored event, and
succeed again once the broker is back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import grpc
import pytest
from aiokafka import AIOKafkaConsumer

from learnerledger.ctl.stack import StackConfig, StackInfo, stack_down, stack_up
from learnerledger.kafka.codec import decode_completion_event
from learnerledger.kafka.topics import TopicSpec, ensure_topics
from learnerledger.postgres import catalog
from learnerledger.postgres.migrations import migrate
from learnerledger.v1 import issuer_gateway_pb2 as pb
from learnerledger.v1 import issuer_gateway_pb2_grpc
from tests.conftest import _free_ports
from tests.integration.ledger_fixtures import seed_catalog
from tests.integration.test_gateway import auth, collect, completion, running_gateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEND_TIMEOUT_S = 2.0
TOPIC = "completions.v1.outage"


@contextlib.contextmanager
def own_servers_only() -> Iterator[None]:
    """stack_up uses external servers when these are set; this test must start its own."""
    saved = {k: os.environ.pop(k) for k in EXTERNAL if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


EXTERNAL = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "ADMIN_DATABASE_URL")


@pytest.fixture(scope="module")
def private_stack() -> Iterator[tuple[StackConfig, StackInfo]]:
    state = Path(tempfile.mkdtemp(prefix="ll-outage-"))
    state.chmod(0o755)
    kafka, controller, postgres = _free_ports(3)
    cfg = StackConfig(
        state_dir=state,
        kafka_port=kafka,
        kafka_controller_port=controller,
        postgres_port=postgres,
        kafka_libs_dir=StackConfig.from_env().libs_dir,
    )
    try:
        with own_servers_only():
            info = stack_up(cfg)
        assert not info.external
        yield cfg, info
    finally:
        stack_down(cfg)


async def accepted_events(bootstrap: str) -> set[str]:
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
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
    private_stack: tuple[StackConfig, StackInfo],
) -> None:
    cfg, info = private_stack
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
