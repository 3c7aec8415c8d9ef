"""A consumer that lost its partitions in a rebalance must not decide its records again.

aiokafka may hand a consumer records it fetched before a rebalance; the new owner of the
partition decides the same records from the offsets stored in PostgreSQL. Entries are safe
(the source event id is unique), but a record that was *rejected* carries no such key: decided
again later, on facts that have changed (the course now exists), it would become an entry too.
The appender therefore skips records below the stored offsets, holding them locked.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.ledger.appender import CreditLogAppender, SourceRecord
from learnerledger.postgres import catalog
from learnerledger.postgres.pool import create_pool
from tests.support.ledger import completion, seed_catalog

pytestmark = pytest.mark.integration


def _records(topic: str, *requests: object) -> list[SourceRecord]:
    return [
        SourceRecord(topic, 0, n, r.envelope.learner_id.encode(), encode_completion_event(r))  # type: ignore[attr-defined]
        for n, r in enumerate(requests)
    ]


async def test_records_decided_before_a_rebalance_are_not_decided_again(
    database_url: str,
) -> None:
    await seed_catalog(database_url)
    unknown = completion("666666666601", "rb-1", course_id="rb-new-101")
    known = completion("666666666602", "rb-2")
    records = _records("rebalance", unknown, known)
    pool = await create_pool(database_url, max_size=2)
    try:
        first = await CreditLogAppender(pool, group_id="rb").process(records)
        assert [r.reason for r in first.rejected] == ["unknown_course"]
        assert [e.completion_id for e in first.appended] == ["rb-2"]

        async with pool.acquire() as connection:  # the course appears afterwards
            await catalog.add_course(
                connection,
                Course(
                    "rb-new-101", "swayam", "New", Decimal(6), 60, CreditRecommendation.APPROVED
                ),
            )
        # The old owner, still holding the fetched batch, decides it again.
        again = await CreditLogAppender(pool, group_id="rb").process(records)
    finally:
        await pool.close()

    assert again.appended == []
    assert again.rejected == []
    connection = await asyncpg.connect(database_url)
    try:
        entries = await connection.fetchval(
            "SELECT count(*) FROM credit_log WHERE learner_id = '666666666601'"
        )
        assert entries == 0, "a rejected record was decided a second time and credited"
    finally:
        await connection.close()


async def test_two_consumers_racing_on_one_batch_decide_it_once(database_url: str) -> None:
    await seed_catalog(database_url)
    records = _records("race", *(completion(f"5555555556{n:02d}", f"race-{n}") for n in range(40)))
    pool = await create_pool(database_url, max_size=4)
    try:
        outcomes = await asyncio.gather(
            CreditLogAppender(pool, group_id="race").process(records),
            CreditLogAppender(pool, group_id="race").process(records),
        )
    finally:
        await pool.close()
    assert sorted(len(o.appended) for o in outcomes) == [0, 40]
    assert all(o.already_recorded == 0 for o in outcomes)
