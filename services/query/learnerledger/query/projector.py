"""``ledgerctl serve projector``: fold ``ledger.entries.v1`` into the read model.

Per batch: decode the entries, group them by learner, load those learners' stored folds, apply
the entries in sequence order with ``TranscriptProjection.apply`` and store the result, all in
one PostgreSQL transaction; then commit the Kafka offsets. Delivery is at least once and the
fold is idempotent by (learner, sequence): an entry at or below the applied sequence is skipped.
A gap (an entry whose predecessor has not been applied) is filled from the credit log, which
holds every entry before the relay publishes it; if the log cannot fill it yet, the batch is
rolled back and retried, so nothing is ever applied out of order.

Stream processor: this worker uses aiokafka directly; faust-streaming was not adopted here
(ARCHITECTURE.md, "Why the projector uses aiokafka"; ``python -m bench.stream_consumers``).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter, Histogram

from learnerledger.domain.entries import Entry
from learnerledger.kafka import KAFKA_UNREACHABLE
from learnerledger.kafka.codec import UndecodableEvent, decode_ledger_entry
from learnerledger.kafka.metadata_pacing import pace_metadata_retries
from learnerledger.kafka.security import client_options
from learnerledger.postgres.errors import DATABASE_UNREACHABLE
from learnerledger.postgres.pool import create_pool
from learnerledger.postgres.read_model import GapNotFilled, apply_entries
from learnerledger.query.settings import ProjectorSettings
from learnerledger.rpc.server import start_health_server
from learnerledger.runtime import (
    Background,
    GrpcServer,
    Metrics,
    Part,
    Resource,
    restart_on_outage,
    run_parts,
    run_service,
    wait_or_stop,
)

log = structlog.get_logger(__name__)

APPLIED = Counter("projector_entries_total", "Ledger entries seen by the projector", ["outcome"])
BATCH_SECONDS = Histogram("projector_batch_seconds", "Time to apply and store one batch")


async def project(
    *,
    bootstrap_servers: str,
    topic: str,
    group_id: str,
    pool: asyncpg.Pool,
    stop: asyncio.Event,
    max_records: int = 2000,
    wait_ms: int = 50,
    session_timeout_ms: int = 10_000,
    gap_retry_ms: int = 500,
    started: asyncio.Event | None = None,
) -> None:
    """Consume ``topic`` until ``stop`` is set."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=f"projector-{group_id}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        max_poll_records=max_records,
        **client_options(),
    )
    pace_metadata_retries(consumer._client)
    await consumer.start()
    if started is not None:
        started.set()
    log.info("projector_consuming", topic=topic, group_id=group_id)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=max(wait_ms, 200), max_records=max_records)
            if not batch:
                continue
            entries: list[Entry] = []
            for records in batch.values():
                for record in records:
                    try:
                        entries.append(decode_ledger_entry(record.value or b""))
                    except (UndecodableEvent, ValueError, KeyError) as exc:
                        APPLIED.labels("undecodable").inc()
                        log.error(
                            "ledger_entry_undecodable",
                            partition=record.partition,
                            offset=record.offset,
                            error=str(exc),
                        )
            started_at = time.perf_counter()
            try:
                async with pool.acquire() as connection, connection.transaction():
                    result = await apply_entries(connection, entries)
            except GapNotFilled as exc:
                log.warning("projector_gap_waiting", reason=str(exc))
                for tp, records in batch.items():
                    consumer.seek(tp, records[0].offset)
                await wait_or_stop(stop, gap_retry_ms / 1000)
                continue
            BATCH_SECONDS.observe(time.perf_counter() - started_at)
            APPLIED.labels("applied").inc(result.applied)
            APPLIED.labels("skipped").inc(result.skipped)
            APPLIED.labels("filled_from_log").inc(result.filled)
            await consumer.commit(
                {
                    TopicPartition(tp.topic, tp.partition): records[-1].offset + 1
                    for tp, records in batch.items()
                }
            )
            log.debug(
                "projector_batch",
                entries=len(entries),
                applied=result.applied,
                skipped=result.skipped,
                filled=result.filled,
            )
    finally:
        await consumer.stop()


#: How long the projector may take to finish its batch and leave its group when stopping.
SHUTDOWN_GRACE_S = 10.0


def projector_parts(settings: ProjectorSettings) -> list[Part]:
    """The projector's parts in start order (stopped in reverse): metrics, the pool, the
    health-only gRPC server (with ``grpc_port``: SERVING once the consumer has joined its
    group), the projecting worker."""
    pool = Resource(
        "pool",
        lambda: create_pool(settings.database_url, role=settings.database_role, max_size=2),
        lambda pool: pool.close(),
    )
    consuming = asyncio.Event()

    async def projecting(stop: asyncio.Event) -> None:
        # The read model and the consumer offsets say where to resume: after a PostgreSQL or
        # Kafka outage the worker starts over in-process, as it would after a crash.
        await restart_on_outage(
            "projector",
            lambda: project(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                topic=settings.topic_ledger_entries,
                group_id=settings.consumer_group,
                pool=pool.value,
                stop=stop,
                max_records=settings.batch_max_records,
                wait_ms=settings.batch_wait_ms,
                session_timeout_ms=settings.session_timeout_ms,
                gap_retry_ms=settings.gap_retry_ms,
                started=consuming,
            ),
            stop,
            outages=DATABASE_UNREACHABLE + KAFKA_UNREACHABLE,
        )

    parts: list[Part] = [Metrics(settings.metrics_port), pool]
    if settings.grpc_port:
        parts.append(
            GrpcServer(
                "health",
                lambda: start_health_server(bind=settings.grpc_bind, port=settings.grpc_port),
            )
        )
    parts.append(Background("projector", projecting, ready=consuming))
    return parts


async def run_projector(
    settings: ProjectorSettings,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Project until ``stop`` is set (None: until SIGTERM/SIGINT); ``started`` is set once the
    consumer has joined its group (health SERVING)."""
    await run_parts(
        "projector",
        projector_parts(settings),
        grace_s=SHUTDOWN_GRACE_S,
        stop=stop,
        serving=started,
    )
    log.info("projector_stopped")


def main() -> None:
    run_service("projector", ProjectorSettings(), run_projector)
