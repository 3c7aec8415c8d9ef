"""``ledgerctl replay rejected``: a course approved late earns its credits, exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from learnerledger.ctl.main import build_parser, run
from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.kafka.security import client_options
from learnerledger.postgres import catalog
from tests.support.ledger import (
    completion,
    eventually,
    produce,
    running_ledger,
    seed_catalog,
)

pytestmark = pytest.mark.integration

LEARNERS = ["511111111111", "522222222222", "533333333333"]
DRY_RUN = ("replay", "rejected", "--reason", "unknown_course", "--dry-run")


async def _count(database_url: str, sql: str, *args: Any) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval(sql, *args))
    finally:
        await connection.close()


async def _ledgerctl(*argv: str) -> int:
    """The CLI as an operator runs it (its own event loop, in a thread)."""
    return await asyncio.to_thread(run, build_parser().parse_args(list(argv)))


async def test_rejected_completions_for_a_late_course_are_redriven_into_credits_exactly_once(
    kafka_bootstrap: str,
    database_url: str,
    topics: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await seed_catalog(database_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("TOPIC_COMPLETIONS", topics.completions)
    late = [completion(learner, f"late-{i}", course_id="late-101") for i, learner in
            enumerate(LEARNERS)]  # fmt: skip
    credits_sql = "SELECT count(*) FROM credit_log WHERE completion_id LIKE 'late-%'"
    awarded_sql = (
        "SELECT count(*) FROM credit_log WHERE completion_id LIKE 'late-%' "
        "AND kind = 'credit_awarded'"
    )
    rejected_sql = "SELECT count(*) FROM rejections WHERE reason = 'unknown_course'"

    async with running_ledger(kafka_bootstrap, database_url, topics):
        await produce(kafka_bootstrap, topics.completions, list(late))
        await produce(kafka_bootstrap, topics.completions, [completion(LEARNERS[0], "ok-1")])

        async def all_rejected() -> bool:
            return await _count(database_url, rejected_sql) == len(LEARNERS)

        await eventually(all_rejected, what="the late completions to be rejected")
        assert await _count(database_url, credits_sql) == 0

        # Dry run while the course is still unknown: listed, still rejected, nothing sent.
        assert await _ledgerctl(*DRY_RUN) == 0
        out = capsys.readouterr().out
        assert out.count("rejected:unknown_course") == len(LEARNERS)
        assert f"{len(LEARNERS)} rejected request(s) would be re-driven" in out

        connection = await asyncpg.connect(database_url)
        try:
            await catalog.add_course(
                connection,
                Course("late-101", "swayam", "Approved late", Decimal(6), 90,
                       CreditRecommendation.PENDING),
            )  # fmt: skip
            # The approval covers the completions already made (decided at completed_at).
            await catalog.set_recommendation(
                connection,
                "late-101",
                CreditRecommendation.APPROVED,
                effective_at=datetime(2020, 1, 1, tzinfo=UTC),
                reason="recommendation granted before the course was catalogued",
            )
        finally:
            await connection.close()

        # Dry run after the fix: the rules would award the credits now; the issuer filter works.
        assert await _ledgerctl("replay", "rejected", "--issuer", "nptel", "--dry-run") == 0
        assert "0 rejected request(s)" in capsys.readouterr().out
        assert await _ledgerctl(*DRY_RUN) == 0
        out = capsys.readouterr().out
        assert out.count("credit_awarded (credits 3.0)") == len(LEARNERS)
        assert await _count(database_url, credits_sql) == 0

        assert await _ledgerctl("replay", "rejected", "--reason", "unknown_course") == 0
        assert f"re-drove {len(LEARNERS)}" in capsys.readouterr().out

        async def awarded() -> bool:
            return await _count(database_url, awarded_sql) == len(LEARNERS)

        await eventually(awarded, what="credits from the re-driven completions")

        # A second re-drive: the ledger meets its own entries (already recorded): no new rows.
        assert await _ledgerctl("replay", "rejected", "--reason", "unknown_course") == 0
        assert f"re-drove {len(LEARNERS)}" in capsys.readouterr().out
        marker = completion(LEARNERS[1], "ok-2")
        await produce(kafka_bootstrap, topics.completions, [marker])

        async def marker_recorded() -> bool:
            return (
                await _count(
                    database_url, "SELECT count(*) FROM credit_log WHERE completion_id = 'ok-2'"
                )
                == 1
            )

        # The marker was produced after the second re-drive; per partition, order holds, and
        # the ledger has consumed every partition past the re-driven records once every
        # partition's stored offset covers the topic's end.
        await eventually(marker_recorded, what="the marker completion")
        await eventually(
            lambda: _all_consumed(database_url, kafka_bootstrap, topics.completions),
            what="the ledger to consume the second re-drive",
        )
        assert await _count(database_url, credits_sql) == len(LEARNERS)
        assert await _count(database_url, awarded_sql) == len(LEARNERS)
        assert await _count(database_url, rejected_sql) == len(LEARNERS)  # nothing new rejected

        assert await _ledgerctl(*DRY_RUN) == 0
        assert capsys.readouterr().out.count(" already_recorded (sequence") == len(LEARNERS)

    # Re-driven records carry where they came from: the rejected record's topic/partition/offset.
    origins = await _redriven_from(kafka_bootstrap, topics.completions)
    connection = await asyncpg.connect(database_url)
    try:
        rejected_at = {
            f"{r['source_topic']}/{r['source_partition']}/{r['source_offset']}"
            for r in await connection.fetch("SELECT * FROM rejections")
        }
    finally:
        await connection.close()
    assert len(origins) == 2 * len(LEARNERS)
    assert set(origins) == rejected_at


async def _redriven_from(bootstrap: str, topic: str) -> list[str]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", **client_options()
    )
    await consumer.start()
    found: list[str] = []
    try:
        ends = await consumer.end_offsets(list(consumer.assignment()) or [])
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batches.values():
                for record in records:
                    found += [v.decode() for k, v in record.headers if k == "redriven_from"]
            positions = {tp: await consumer.position(tp) for tp in consumer.assignment()}
            if ends and all(positions.get(tp, 0) >= end for tp, end in ends.items()):
                break
    finally:
        await consumer.stop()
    return found


async def _all_consumed(database_url: str, bootstrap: str, topic: str) -> bool:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **client_options())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            await consumer.topics()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []
            ]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT partition, next_offset FROM consumer_offsets WHERE topic = $1", topic
        )
    finally:
        await connection.close()
    stored = {r["partition"]: r["next_offset"] for r in rows}
    return all(stored.get(tp.partition, 0) >= end for tp, end in ends.items())
