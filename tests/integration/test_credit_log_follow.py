"""The pitfall of docs/domain.md: a reader following the log must not skip a late-committing row."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from learnerledger.postgres.credit_log import (
    LogCursor,
    append_entries,
    hashes_committed_after,
    read_committed_after,
)
from tests.support.verifiable_log import first_entry

pytestmark = pytest.mark.integration


async def test_a_row_that_commits_late_is_read_not_skipped(database_url: str) -> None:
    early, late, reader = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        cursor = LogCursor(
            *(await reader.fetchrow(
                "SELECT coalesce(max(tx_id::text::bigint), 0), coalesce(max(position), 0) "
                "FROM credit_log"
            ))
        )  # fmt: skip
        slow = early.transaction()
        await slow.start()
        await append_entries(early, [first_entry("500000000001")])  # takes the lower position
        async with late.transaction():
            await append_entries(late, [first_entry("500000000002")])  # commits first

        naive = await reader.fetch(
            "SELECT learner_id FROM credit_log WHERE position > $1 ORDER BY position",
            cursor.position,
        )
        assert [r["learner_id"] for r in naive] == ["500000000002"]  # position 1 is not visible

        entries, after = await read_committed_after(reader, cursor, 100)
        assert entries == []  # holds back until the older transaction has finished
        assert after == cursor
        assert await hashes_committed_after(reader, cursor, 100) == ([], cursor)  # the tree too

        await slow.commit()
        # The horizon is cluster-wide: another session's open write may hold it back a moment.
        entries, after = [], cursor
        async with asyncio.timeout(30):
            while not entries:
                entries, after = await read_committed_after(reader, cursor, 100)
                await asyncio.sleep(0.05)
        assert [e.learner_id for e in entries] == ["500000000001", "500000000002"]
        # What the Merkle tree reads: the same rows in the same order, as positions and hashes.
        hashes, hashed_after = await hashes_committed_after(reader, cursor, 100)
        assert [(h.position, h.entry_hash) for h in hashes] == [
            (e.position, e.entry_hash) for e in entries
        ]
        assert hashed_after == after
        entries, _ = await read_committed_after(reader, after, 100)
        assert entries == []
    finally:
        for connection in (early, late, reader):
            await connection.close()
