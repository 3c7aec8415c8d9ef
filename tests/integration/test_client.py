"""The client library (clients/python) against the real gateway on real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from learnerledger.domain.events import completion_event_id
from learnerledger.v1 import issuer_gateway_pb2 as pb
from learnerledger_client import (
    Acceptance,
    CallFailed,
    ClientConfig,
    FieldProblem,
    RetriesExhausted,
    RetryPolicy,
    blocking,
)
from learnerledger_client import aio as client_aio
from tests.support.gateway import completion, running_gateway
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02)


def config(port: int, token: str, **extra: Any) -> ClientConfig:
    return ClientConfig(target=f"127.0.0.1:{port}", token=token, **extra)


async def test_submit_many_answers_every_item_in_order_through_a_small_window(
    kafka_bootstrap: str,
    database_url: str,
    topics: Any,
    tokens: dict[str, str],
) -> None:
    items = [
        completion(f"lib-{i}", learner_id="not-an-apaar" if i == 7 else "111111111111")
        for i in range(40)
    ]
    async with (
        running_gateway(kafka_bootstrap, database_url, topics) as (running, _),
        client_aio.IssuerClient(config(running.port, tokens["swayam"], window=3)) as client,
    ):
        outcomes = await client.submit_many(items)
        again = await client.submit_many(items[:5])
        status = await client.get_status("lib-0")
        revoked = await client.revoke("lib-1", "111111111111", "issued in error")

    assert [o.completion_id for o in outcomes] == [f"lib-{i}" for i in range(40)]
    assert [o.acceptance for o in outcomes] == [
        Acceptance.REJECTED if i == 7 else Acceptance.ACCEPTED for i in range(40)
    ]
    rejected = outcomes[7]
    assert rejected.reason == "INVALID_ARGUMENT"
    assert rejected.field_problems[0].field == "completion.learner_id"
    assert isinstance(rejected.field_problems[0], FieldProblem)
    assert outcomes[0].event_id == str(completion_event_id("swayam", "lib-0"))
    assert all(o.attempts == 1 for o in outcomes)
    # Resubmitting is safe: the same event ids, never a new one.
    assert [o.event_id for o in again] == [o.event_id for o in outcomes[:5]]
    assert {o.acceptance for o in again} <= {Acceptance.ACCEPTED, Acceptance.DUPLICATE}
    assert status.state == pb.COMPLETION_STATE_ACCEPTED
    assert revoked.status in (pb.ACCEPTANCE_STATUS_ACCEPTED, pb.ACCEPTANCE_STATUS_DUPLICATE)


async def test_the_blocking_flavour_does_the_same(
    kafka_bootstrap: str,
    database_url: str,
    topics: Any,
    tokens: dict[str, str],
) -> None:
    async with running_gateway(kafka_bootstrap, database_url, topics) as (running, _):
        port = running.port

        def partner() -> tuple[list[Any], Any]:
            with blocking.IssuerClient(config(port, tokens["swayam"])) as client:
                outcomes = client.submit_many([completion("blk-1"), completion("blk-2")])
                return outcomes, client.get_status("blk-2")

        outcomes, status = await asyncio.to_thread(partner)
    assert [(o.completion_id, o.acceptance) for o in outcomes] == [
        ("blk-1", Acceptance.ACCEPTED),
        ("blk-2", Acceptance.ACCEPTED),
    ]
    assert status.completion_id == "blk-2"


async def test_errors_that_are_not_unavailable_are_raised_at_once(
    kafka_bootstrap: str,
    database_url: str,
    topics: Any,
    tokens: dict[str, str],
) -> None:
    async with running_gateway(kafka_bootstrap, database_url, topics) as (running, _):
        async with client_aio.IssuerClient(config(running.port, "not-a-token")) as stranger:
            with pytest.raises(CallFailed) as refused:
                await stranger.submit_many([completion("x-1")])
        assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert not isinstance(refused.value, RetriesExhausted)
        async with client_aio.IssuerClient(config(running.port, tokens["swayam"])) as client:
            with pytest.raises(CallFailed) as missing:
                await client.get_status("never-submitted")
        assert missing.value.code == grpc.StatusCode.NOT_FOUND


async def test_unavailable_is_retried_then_given_up_with_the_unanswered_items_named() -> None:
    settings = config(free_port(), "t", retry=FAST_RETRY, timeout_s=2)
    async with client_aio.IssuerClient(settings) as client:
        with pytest.raises(RetriesExhausted) as unary:
            await client.get_status("c-1")
        with pytest.raises(RetriesExhausted) as stream:
            await client.submit_many([completion("c-1")])
    assert unary.value.code == grpc.StatusCode.UNAVAILABLE
    assert stream.value.code == grpc.StatusCode.UNAVAILABLE
    assert "'t'" not in repr(settings)
