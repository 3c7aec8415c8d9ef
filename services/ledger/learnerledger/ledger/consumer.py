"""The ledger's Kafka consumer: batches from ``completions.v1`` into the appender.

Offsets live in PostgreSQL (committed with the entries); on every assignment the consumer
seeks to them. The offsets are also committed to Kafka after each batch, only so that lag
tools (``ledgerctl lag``, KEDA) can see the group's progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Histogram

from learnerledger.domain.validation import DEFAULT_CLOCK_SKEW
from learnerledger.kafka.codec import encode_dead_letter
from learnerledger.kafka.metadata_pacing import pace_metadata_retries
from learnerledger.kafka.producer import DurableProducer
from learnerledger.kafka.security import client_options
from learnerledger.ledger.appender import CreditLogAppender, SourceRecord
from learnerledger.postgres import bookkeeping

log = structlog.get_logger(__name__)

OUTCOMES = Counter("ledger_requests_total", "Requests decided by the ledger", ["outcome"])
BATCH_SECONDS = Histogram("ledger_batch_seconds", "Time to decide and append one batch")


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: AIOKafkaConsumer, pool: asyncpg.Pool, group_id: str) -> None:
        self._consumer = consumer
        self._pool = pool
        self._group_id = group_id

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        by_topic: dict[str, dict[int, int]] = {}
        async with self._pool.acquire() as connection:
            for topic in {tp.topic for tp in assigned}:
                by_topic[topic] = await bookkeeping.load_offsets(connection, self._group_id, topic)
        unknown = [tp for tp in assigned if tp.partition not in by_topic[tp.topic]]
        # PostgreSQL is the truth: a partition it has no offset for starts at the beginning,
        # whatever Kafka remembers. (A synchronous seek: seek_to_beginning resets lazily and
        # could let one batch through from the old position first.)
        beginnings = await self._consumer.beginning_offsets(unknown) if unknown else {}
        for tp in assigned:
            self._consumer.seek(tp, by_topic[tp.topic].get(tp.partition, beginnings.get(tp, 0)))
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


async def consume_completions(
    *,
    bootstrap_servers: str,
    topic: str,
    dlq_topic: str,
    group_id: str,
    pool: asyncpg.Pool,
    producer: DurableProducer,
    max_records: int,
    wait_ms: int,
    session_timeout_ms: int = 10_000,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    stop: asyncio.Event,
) -> None:
    """Run until ``stop`` is set: poll, decide, append, repeat."""

    async def dead_letters(rejections: Sequence[bookkeeping.Rejection]) -> None:
        sends = [
            await producer.send(
                dlq_topic,
                key=r.original_key,
                value=encode_dead_letter(
                    original_key=r.original_key,
                    original_value=r.original_value,
                    reason=r.reason,
                    detail=r.detail,
                    source_topic=r.source_topic,
                    source_partition=r.source_partition,
                    source_offset=r.source_offset,
                ),
                headers=[
                    ("source_topic", r.source_topic.encode()),
                    ("source_partition", str(r.source_partition).encode()),
                    ("source_offset", str(r.source_offset).encode()),
                    ("reason", r.reason.encode()),
                ],
            )
            for r in rejections
        ]
        await asyncio.gather(*sends)

    appender = CreditLogAppender(
        pool, group_id=group_id, dead_letters=dead_letters, clock_skew=clock_skew
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_records,
        client_id=f"ledger-{group_id}",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(session_timeout_ms // 3, 1000),
        **client_options(),
    )
    pace_metadata_retries(consumer._client)
    consumer.subscribe([topic], listener=_SeekToStoredOffsets(consumer, pool, group_id))
    await consumer.start()
    log.info("ledger_consumer_started", topic=topic, group_id=group_id)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=max(wait_ms, 1), max_records=max_records)
            records = [
                SourceRecord(m.topic, m.partition, m.offset, m.key, m.value)
                for messages in batches.values()
                for m in messages
            ]
            if not records:
                continue
            with BATCH_SECONDS.time():
                outcome = await appender.process(records)
            for name, count in outcome.counts.items():
                OUTCOMES.labels(outcome=name).inc(count)
            log.info(
                "batch_appended",
                records=len(records),
                appended=len(outcome.appended),
                rejected=len(outcome.rejected),
                already_recorded=outcome.already_recorded,
            )
            try:
                await consumer.commit(
                    {tp: messages[-1].offset + 1 for tp, messages in batches.items()}
                )
            except KafkaError as exc:  # informational only: PostgreSQL holds the real offsets
                log.warning("kafka_offset_commit_failed", error=str(exc))
    finally:
        await consumer.stop()
