"""Kafka admits only its principals, and each only to what its service does.

On the local stack's real broker: SASL/SCRAM-SHA-512 on the client listener, StandardAuthorizer
with ``allow.everyone.if.no.acl.found=false``, and the ACLs of ``kafka_broker.ACLS``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from learnerledger.config import CommonSettings
from learnerledger.kafka.security import client_options
from learnerledger_devstack.stack import StackInfo

pytestmark = pytest.mark.integration

#: What Kafka answers a principal without the ACL: no WRITE on the topic, or (a principal with
#: WRITE on no topic at all) no right to start an idempotent producer.
REFUSED = (TopicAuthorizationFailedError, ClusterAuthorizationFailedError)


def options_of(stack: StackInfo, principal: str, **override: str) -> dict[str, Any]:
    if not stack.kafka_env:
        pytest.skip("external Kafka: its principals are not the local stack's")
    return client_options(CommonSettings.model_validate({**stack.kafka_env[principal], **override}))


async def produce(bootstrap: str, options: dict[str, Any], topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=5000,
        **options,
    )
    try:
        async with asyncio.timeout(20):
            await producer.start()
            await producer.send_and_wait(topic, b"forged", key=b"123456789012")
    finally:
        await producer.stop()


async def test_an_anonymous_client_cannot_produce(stack: StackInfo, topics: Any) -> None:
    options_of(stack, "admin")  # skips on external servers
    with pytest.raises((KafkaError, TimeoutError)):
        await produce(stack.kafka_bootstrap, {"security_protocol": "PLAINTEXT"}, topics.completions)


async def test_a_wrong_password_cannot_produce(stack: StackInfo, topics: Any) -> None:
    wrong = options_of(stack, "gateway", KAFKA_SASL_PASSWORD="not-the-password")
    with pytest.raises((KafkaError, TimeoutError)):
        await produce(stack.kafka_bootstrap, wrong, topics.completions)


async def test_the_gateway_may_produce_completions_and_nothing_else(
    stack: StackInfo, topics: Any
) -> None:
    gateway = options_of(stack, "gateway")
    await produce(stack.kafka_bootstrap, gateway, topics.completions)  # its own job works
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(stack.kafka_bootstrap, gateway, topics.ledger_entries)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(stack.kafka_bootstrap, gateway, topics.completions_dlq)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, **gateway)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topics.completions, 0)])
        consumer.seek(TopicPartition(topics.completions, 0), 0)
        with pytest.raises(TopicAuthorizationFailedError):
            async with asyncio.timeout(20):
                await consumer.getone()
    finally:
        await consumer.stop()


async def test_the_projector_cannot_produce_completions(stack: StackInfo, topics: Any) -> None:
    projector = options_of(stack, "projector")
    with pytest.raises(REFUSED):
        await produce(stack.kafka_bootstrap, projector, topics.completions)
    with pytest.raises(REFUSED):
        await produce(stack.kafka_bootstrap, projector, topics.ledger_entries)
