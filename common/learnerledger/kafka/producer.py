"""The one way the services produce: idempotent, ``acks=all``, bounded in time, and renewed
after the errors an idempotent producer cannot recover from."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from prometheus_client import Counter

from learnerledger.kafka.metadata_pacing import pace_metadata_retries
from learnerledger.kafka.security import client_options

log = structlog.get_logger(__name__)

RENEWALS = Counter(
    "kafka_producer_renewals_total", "Producers replaced after a fatal error", ["client_id"]
)

#: After one of these the producer's sender task has ended and every later send fails
#: (aiokafka does not bump the epoch the way the Java client does).
FATAL_PRODUCER_ERRORS: tuple[type[Exception], ...] = (
    kafka_errors.OutOfOrderSequenceNumber,
    kafka_errors.ProducerFenced,
    kafka_errors.UnknownProducerId,
    kafka_errors.InvalidProducerEpoch,
)


class DurableProducer:
    """An idempotent ``acks=all`` producer that replaces itself after a fatal error.

    When a broker restarts with batches in flight, aiokafka's idempotent producer can get
    ``OutOfOrderSequenceNumber``; its sender stops and it never sends again. The send that saw
    the error fails (its caller was never told "stored"), and the next send starts a fresh
    producer with a new producer id. Consumers deduplicate by event id, so a record that was
    in fact written before the error and is sent again costs nothing.
    """

    def __init__(self, factory: Callable[[], AIOKafkaProducer], client_id: str) -> None:
        self._factory = factory
        self._client_id = client_id
        self._producer = factory()
        self._broken = False
        self._renewing = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._producer.start()

    async def flush(self) -> None:
        await self._producer.flush()

    async def stop(self) -> None:
        await self._producer.stop()
        if self._retired:
            await asyncio.gather(*self._retired, return_exceptions=True)

    async def send(
        self,
        topic: str,
        *,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Like ``AIOKafkaProducer.send``: enqueue, return the future of the broker's ack."""
        if self._broken:
            await self._renew()
        producer = self._producer
        future: asyncio.Future[Any] = await producer.send(
            topic, value=value, key=key, headers=headers
        )
        if future.done():  # failed at once: callbacks would run only after the caller's await
            self._watch(producer, future)
        else:
            future.add_done_callback(lambda done: self._watch(producer, done))
        return future

    async def send_and_wait(
        self,
        topic: str,
        *,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        return await (await self.send(topic, value=value, key=key, headers=headers))

    def _watch(self, producer: AIOKafkaProducer, done: asyncio.Future[Any]) -> None:
        if done.cancelled() or producer is not self._producer:
            return
        if isinstance(done.exception(), FATAL_PRODUCER_ERRORS):
            self._broken = True

    async def _renew(self) -> None:
        async with self._renewing:
            if not self._broken:
                return  # another send renewed it meanwhile
            fresh = self._factory()
            await fresh.start()  # Kafka down: raises, and the next send tries again
            old, self._producer, self._broken = self._producer, fresh, False
            RENEWALS.labels(self._client_id).inc()
            log.warning("kafka_producer_renewed", client_id=self._client_id)
            retiring = asyncio.create_task(self._retire(old))
            self._retired.add(retiring)
            retiring.add_done_callback(self._retired.discard)

    @staticmethod
    async def _retire(producer: AIOKafkaProducer) -> None:
        with contextlib.suppress(kafka_errors.KafkaError, TimeoutError):
            async with asyncio.timeout(10):
                await producer.stop()


def durable_producer(
    bootstrap_servers: str,
    *,
    client_id: str,
    linger_ms: int = 5,
    request_timeout_ms: int = 10_000,
    max_batch_size: int = 256 * 1024,
) -> DurableProducer:
    """A producer whose acknowledgement means the record is on every in-sync replica.

    ``enable_idempotence`` prevents duplicates from the producer's own retries; ``acks='all'``
    waits for the in-sync replicas. Callers bound each send with their own timeout.
    """

    def factory() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            request_timeout_ms=request_timeout_ms,
            max_batch_size=max_batch_size,
            compression_type=None,
            **client_options(),
        )
        pace_metadata_retries(producer.client)
        return producer

    return DurableProducer(factory, client_id)


async def started(producer: DurableProducer) -> DurableProducer:
    """``producer``, started; stopped again (its connections closed) if it does not start."""
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


def header(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], name: str
) -> str | None:
    """The first header called ``name``, decoded as UTF-8 (None when absent)."""
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", errors="replace")
    return None
