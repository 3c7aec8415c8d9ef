"""Kill the ledger with SIGKILL while a backdated approval is being fanned out and re-decided:
every covered completion is credited exactly once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from datetime import timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from learnerledger.domain.catalog import CreditRecommendation
from learnerledger.kafka.security import client_options
from learnerledger.ledger.verification import verify_ledger
from learnerledger.postgres import catalog
from tests.support.ledger import (
    COMPLETED,
    completion,
    eventually,
    produce,
    seed_catalog,
    start_ledger,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LEARNERS = int(os.environ.get("REDECISION_CRASH_TEST_LEARNERS", "3000"))
KILLS = 3


async def test_sigkill_during_approval_redecision_credits_each_completion_exactly_once(
    kafka_bootstrap: str, database_url: str, topics
) -> None:  # type: ignore[no-untyped-def]
    await seed_catalog(database_url)
    await produce(
        kafka_bootstrap,
        topics.completions,
        [
            completion(f"{710000000000 + n}", f"late-{n}", course_id="db-201")
            for n in range(LEARNERS)
        ],
    )
    env = {
        **os.environ,
        **topics.env(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "LEDGER_CONSUMER_GROUP": f"ledger-{topics.completions}",
        "LEDGER_METRICS_PORT": "0",
        "LEDGER_GRPC_PORT": "0",
        "LEDGER_SESSION_TIMEOUT_MS": "6000",
        "LEDGER_BATCH_MAX_RECORDS": "100",
        "LEDGER_APPROVAL_FANOUT_IDLE_S": "0.1",
        "LOG_LEVEL": "WARNING",
    }
    connection = await asyncpg.connect(database_url)

    async def awarded() -> int:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM credit_log WHERE kind = 'credit_awarded'"
            )
        )

    process = start_ledger(env)
    kills = 0
    try:

        async def all_recorded() -> bool:
            return await connection.fetchval("SELECT count(*) FROM credit_log") == LEARNERS

        await eventually(all_recorded, timeout=180, what="every completion recorded")
        await catalog.set_recommendation(
            connection,
            "db-201",
            CreditRecommendation.APPROVED,
            effective_at=COMPLETED - timedelta(days=1),
            reason="approved the day before; recorded late",
        )
        chooser = random.Random()
        while kills < KILLS and await awarded() < LEARNERS:
            # Kill once this incarnation is re-deciding (not while it is still starting).
            before = await awarded()

            async def progressing(before: int = before) -> bool:
                return await awarded() > before

            await eventually(progressing, timeout=120, what="the re-decision to progress")
            await asyncio.sleep(chooser.uniform(0.0, 0.2))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            kills += 1
            print(f"kill {kills}: {await awarded()} re-decided when killed")
            process = start_ledger(env)

        async def all_credited_and_consumed() -> bool:
            fanned_out = await connection.fetchval(
                "SELECT count(*) FROM course_redecision_fanouts f "
                "JOIN course_recommendation_changes c USING (change_id) "
                "WHERE c.course_id = 'db-201'"
            )
            return bool(
                fanned_out == 1
                and await awarded() >= LEARNERS
                and await _consumed_everything(connection, kafka_bootstrap, topics, env)
            )

        await eventually(all_credited_and_consumed, timeout=240, what="every re-decision")
        rows = await connection.fetch(
            "SELECT learner_id, count(*) AS entries, "
            "count(*) FILTER (WHERE kind = 'credit_awarded') AS credits, "
            "bool_and(kind <> 'credit_awarded' OR (payload->>'redecides_sequence')::int = 1) "
            "AS references_original FROM credit_log GROUP BY learner_id"
        )
        report = await verify_ledger(connection)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        await connection.close()
    assert kills >= 1, "re-decision finished before a kill; raise the size"
    assert len(rows) == LEARNERS
    assert {(r["entries"], r["credits"], r["references_original"]) for r in rows} == {(2, 1, True)}
    assert report.ok, report


async def _consumed_everything(
    connection: asyncpg.Connection, bootstrap: str, topics, env: dict[str, str]
) -> bool:  # type: ignore[no-untyped-def]
    consumer = AIOKafkaConsumer(
        topics.completions, bootstrap_servers=bootstrap, group_id=None, **client_options()
    )
    await consumer.start()
    try:
        end = await consumer.end_offsets(list(consumer.assignment()))
    finally:
        await consumer.stop()
    stored = {
        r["partition"]: r["next_offset"]
        for r in await connection.fetch(
            "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1",
            env["LEDGER_CONSUMER_GROUP"],
        )
    }
    return all(stored.get(tp.partition, 0) >= offset for tp, offset in end.items())
