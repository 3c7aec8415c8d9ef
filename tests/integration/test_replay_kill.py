"""``ledgerctl replay projections`` killed with SIGKILL half-way resumes to the same result."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

import asyncpg
import pytest

from learnerledger.kafka.codec import encode_completion_event
from learnerledger.ledger.appender import CreditLogAppender, SourceRecord
from learnerledger.postgres.pool import create_pool
from tests.support.ledger import completion, seed_catalog
from tests.support.projector import log_equals_read_model as log_equals_read_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENTRIES = int(os.environ.get("REPLAY_KILL_TEST_ENTRIES", "20000"))


def replay(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "learnerledger.ctl.main", "replay", "projections",
         "--source", "log", "--batch", "200"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


async def test_sigkill_mid_replay_then_resume(kafka_bootstrap: str, database_url: str) -> None:
    await seed_catalog(database_url)
    requests = [
        completion(
            f"{650000000000 + n % 2000}", f"kill-{n}", completed_at=datetime(2026, 1, 2, tzinfo=UTC)
        )
        for n in range(ENTRIES)
    ]
    records = [
        SourceRecord(
            "replay-kill", 0, n, r.envelope.learner_id.encode(), encode_completion_event(r)
        )
        for n, r in enumerate(requests)
    ]
    pool = await create_pool(database_url, max_size=1)
    appender = CreditLogAppender(pool, group_id="replay-kill")
    for start in range(0, len(records), 2000):
        await appender.process(records[start : start + 2000])
    await pool.close()

    env = {**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    connection = await asyncpg.connect(database_url)
    try:
        first = replay(env)
        applied = 0
        async with asyncio.timeout(120):
            while applied < ENTRIES // 10:
                applied = await connection.fetchval(
                    "SELECT coalesce(max(entries_applied), 0) FROM read_model_replays "
                    "WHERE finished_at IS NULL"
                )
                await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        row = await connection.fetchrow(
            "SELECT state, entries_applied FROM read_model_replays WHERE finished_at IS NULL"
        )
        assert row is not None, "the killed replay left no resumable progress"
        assert 0 < row["entries_applied"] < ENTRIES
        print(f"killed the replay after {row['entries_applied']} of {ENTRIES} entries")

        second = replay(env)
        output, _ = second.communicate(timeout=300)
        assert second.returncode == 0, output[-3000:]
        assert "resum" in output.lower(), output[-3000:]
        states = await connection.fetch("SELECT state FROM read_model_replays")
        assert [r["state"] for r in states] == ["succeeded"]
        leftovers = await connection.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'read_model_%'"
        )
        assert leftovers == 0
    finally:
        await connection.close()
    assert await log_equals_read_model(database_url) == []
