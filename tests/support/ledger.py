"""Building blocks for ledger tests on the real stack: seed the catalog, produce requests."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.domain.events import (
    CompletionSubmitted,
    ConsentGrantRequested,
    Envelope,
    LedgerRequest,
    Result,
    RevocationRequested,
    completion_event_id,
    revocation_event_id,
)
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.kafka.security import client_options
from learnerledger.ledger.service import run_ledger
from learnerledger.ledger.settings import LedgerSettings
from learnerledger.postgres import catalog

COMPLETED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def seed_catalog(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        if await connection.fetchval("SELECT count(*) FROM issuers"):
            return
        await catalog.add_issuer(connection, "swayam", "SWAYAM")
        await catalog.add_issuer(connection, "nptel", "NPTEL")
        await catalog.add_university(connection, "du", "University of Delhi")
        for course in (
            Course("ml-101", "swayam", "Machine learning", Decimal("5.5"), 90,
                   CreditRecommendation.APPROVED),
            Course("db-201", "swayam", "Databases", Decimal(6), 60, CreditRecommendation.PENDING),
            Course("os-301", "nptel", "Operating systems", Decimal(7), 120,
                   CreditRecommendation.APPROVED),
        ):  # fmt: skip
            await catalog.add_course(connection, course)
    finally:
        await connection.close()


async def seed_courses(database_url: str, course_ids: list[str], issuer_id: str = "swayam") -> None:
    """Approved 90-hour courses (3 credits each) of ``issuer_id``: a learner earns a course's
    credit once, so a test that credits one learner many times needs as many courses."""
    connection = await asyncpg.connect(database_url)
    try:
        for course_id in course_ids:
            with contextlib.suppress(catalog.AlreadyExists):
                await catalog.add_course(
                    connection,
                    Course(course_id, issuer_id, f"Course {course_id}", Decimal("5.5"), 90,
                           CreditRecommendation.APPROVED),
                )  # fmt: skip
    finally:
        await connection.close()


def completion(
    learner_id: str,
    completion_id: str,
    *,
    issuer_id: str = "swayam",
    course_id: str = "ml-101",
    result: Result = Result.PASS,
    score: float = 75.0,
    completed_at: datetime = COMPLETED,
) -> CompletionSubmitted:
    envelope = Envelope(
        completion_event_id(issuer_id, completion_id),
        1,
        datetime.now(UTC),
        issuer_id,
        learner_id,
    )
    return CompletionSubmitted(envelope, completion_id, course_id, completed_at, result, score)


def revocation(
    learner_id: str, completion_id: str, *, issuer_id: str = "swayam"
) -> RevocationRequested:
    envelope = Envelope(
        revocation_event_id(issuer_id, completion_id), 1, datetime.now(UTC), issuer_id, learner_id
    )
    return RevocationRequested(envelope, completion_id, "issued in error")


def consent(learner_id: str, university_id: str = "du") -> ConsentGrantRequested:
    import uuid

    envelope = Envelope(uuid.uuid4(), 1, datetime.now(UTC), "", learner_id)
    return ConsentGrantRequested(envelope, university_id)


async def produce(
    bootstrap: str, topic: str, items: list[LedgerRequest | tuple[bytes, bytes]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **client_options()
    )
    await producer.start()
    try:
        # Pipelined: the idempotent producer keeps each partition's order; all are awaited.
        sent = []
        for item in items:
            if isinstance(item, tuple):
                key, value = item
            else:
                key, value = item.envelope.learner_id.encode(), encode_completion_event(item)
            sent.append(await producer.send(topic, key=key, value=value))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 60.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def days(n: int) -> timedelta:
    return timedelta(days=n)


@contextlib.asynccontextmanager
async def running_ledger(
    kafka_bootstrap: str, database_url: str, topics: Any, *, grpc_port: int = 0, **more: Any
) -> AsyncIterator[LedgerSettings]:
    """The ledger service in this process, on the test's topics and database (``more``: other
    settings, e.g. ``checkpoint_signing_key_file``)."""
    async with running_ledger_task(
        kafka_bootstrap, database_url, topics, grpc_port=grpc_port, **more
    ) as (settings, _):
        yield settings


@contextlib.asynccontextmanager
async def running_ledger_task(
    kafka_bootstrap: str, database_url: str, topics: Any, *, grpc_port: int = 0, **more: Any
) -> AsyncIterator[tuple[LedgerSettings, asyncio.Task[None]]]:
    """:func:`running_ledger`, and the task that runs the service (done = the service ended)."""
    settings = LedgerSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        topic_completions=topics.completions,
        topic_ledger_entries=topics.ledger_entries,
        topic_completions_dlq=topics.completions_dlq,
        topic_partitions=topics.partitions,
        consumer_group=f"ledger-{topics.completions}",
        **({"topic_ledger_checkpoints": topics.checkpoints} if topics.checkpoints else {}),
        metrics_port=0,
        grpc_port=grpc_port,
        batch_wait_ms=20,
        **more,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(settings, stop))
    try:
        if grpc_port:
            await wait_listening(grpc_port, task)
        yield settings, task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def wait_listening(port: int, task: asyncio.Task[None], timeout: float = 30) -> None:
    """Wait until one of the ledger's gRPC ports accepts connections (a call made sooner is refused:
    gRPC fails fast with UNAVAILABLE), or the service ended."""
    async with asyncio.timeout(timeout):
        while not task.done():
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
    task.result()  # the service ended before it listened: raise what it raised


async def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 60.0) -> list[Any]:
    """At least ``count`` records of ``topic`` from its beginning (fails after ``timeout``)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        **client_options(),
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    records.extend(messages)
    finally:
        await consumer.stop()
    return records


def start_ledger(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "learnerledger.ctl.main", "serve", "ledger"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
