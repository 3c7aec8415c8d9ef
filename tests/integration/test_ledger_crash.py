"""Kill the ledger with SIGKILL at random moments: nothing is lost, nothing is duplicated."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from learnerledger.kafka.codec import decode_ledger_entry, encode_completion_event
from learnerledger.kafka.security import client_options
from learnerledger.ledger.verification import verify_ledger
from tests.support.ledger import completion, eventually, seed_catalog, start_ledger

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMPLETIONS = int(os.environ.get("LEDGER_CRASH_TEST_COMPLETIONS", "20000"))
KILLS = int(os.environ.get("LEDGER_CRASH_TEST_KILLS", "5"))
LEARNERS = 2000


async def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    kafka_bootstrap: str, database_url: str, topics
) -> None:  # type: ignore[no-untyped-def]
    await seed_catalog(database_url)
    requests = [
        completion(f"{700000000000 + n % LEARNERS}", f"crash-{n}") for n in range(COMPLETIONS)
    ]
    retries = random.Random(7).sample(requests, COMPLETIONS // 20)  # partners retrying
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        **client_options(),
    )
    await producer.start()
    try:
        sends = [
            await producer.send(
                topics.completions,
                key=r.envelope.learner_id.encode(),
                value=encode_completion_event(r),
            )
            for r in requests + retries
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()

    env = {
        **os.environ,
        **topics.env(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "LEDGER_CONSUMER_GROUP": f"ledger-{topics.completions}",
        "LEDGER_METRICS_PORT": "0",
        "LEDGER_GRPC_PORT": "0",
        "LEDGER_SESSION_TIMEOUT_MS": "6000",
        "LEDGER_BATCH_MAX_RECORDS": "200",
        "LOG_LEVEL": "WARNING",
    }
    connection = await asyncpg.connect(database_url)
    chooser = random.Random()
    kills = 0
    stored = 0
    process = start_ledger(env)
    try:
        while kills < KILLS and stored < COMPLETIONS:
            # Kill at a random moment once this incarnation is appending (not while it is
            # still joining the group, which would prove nothing about the append path).
            before = stored

            async def resumed(before: int = before) -> bool:
                count = await connection.fetchval("SELECT count(*) FROM credit_log")
                return bool(count > before or count >= COMPLETIONS)

            await eventually(resumed, timeout=60, what="the restarted ledger to append")
            await asyncio.sleep(chooser.uniform(0.05, 0.6))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            stored = await connection.fetchval("SELECT count(*) FROM credit_log")
            kills += 1
            print(f"kill {kills}: {stored} entries stored when killed")
            process = start_ledger(env)

        async def all_appended() -> bool:
            return await connection.fetchval("SELECT count(*) FROM credit_log") >= COMPLETIONS

        await eventually(all_appended, timeout=240, what=f"{COMPLETIONS} entries")

        async def all_published() -> bool:
            cursor = await connection.fetchval(
                "SELECT last_position FROM relay_progress WHERE topic = $1", topics.ledger_entries
            )
            return cursor == await connection.fetchval("SELECT max(position) FROM credit_log")

        await eventually(all_published, timeout=120, what="the relay to publish every entry")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

    try:
        entries = await connection.fetchval("SELECT count(*) FROM credit_log")
        distinct = await connection.fetchval(
            "SELECT count(DISTINCT source_event_id) FROM credit_log"
        )
        gaps = await connection.fetchval(
            "SELECT count(*) FROM (SELECT learner_id FROM credit_log GROUP BY learner_id "
            "HAVING max(sequence) <> count(*) OR min(sequence) <> 1) AS broken"
        )
        rejected = await connection.fetchval("SELECT count(*) FROM rejections")
        report = await verify_ledger(connection)
        stored = {
            (r["learner_id"], r["sequence"])
            for r in await connection.fetch("SELECT learner_id, sequence FROM credit_log")
        }
    finally:
        await connection.close()
    print(
        f"sent {len(requests) + len(retries)} ({len(retries)} retries), kills {kills}, "
        f"entries {entries}, distinct {distinct}, rejected {rejected}, gaps {gaps}"
    )
    assert kills >= KILLS, f"the ledger finished before {KILLS} kills; raise the size"
    assert entries == distinct == COMPLETIONS
    assert rejected == 0
    assert gaps == 0
    assert report.ok, report
    assert report.learners_checked == LEARNERS

    published = await _read_all_keys(kafka_bootstrap, topics.ledger_entries)
    assert published == stored


async def _read_all_keys(bootstrap: str, topic: str) -> set[tuple[str, int]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        **client_options(),
    )
    await consumer.start()
    seen: set[tuple[str, int]] = set()
    try:
        end = await consumer.end_offsets(list(consumer.assignment()))
        while [tp for tp, offset in end.items() if await consumer.position(tp) < offset]:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                for message in messages:
                    entry = decode_ledger_entry(message.value)
                    seen.add((entry.learner_id, entry.sequence))
    finally:
        await consumer.stop()
    return seen
