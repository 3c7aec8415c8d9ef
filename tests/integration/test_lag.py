"""``ledgerctl lag``: consumer offsets per group and partition, relay and read-model lag."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from learnerledger.ctl.main import build_parser, run
from learnerledger.postgres.credit_log import LogCursor, read_committed_after
from learnerledger.postgres.read_model import apply_entries
from tests.support.ledger import (
    completion,
    eventually,
    produce,
    running_ledger,
    seed_catalog,
)

pytestmark = pytest.mark.integration

LEARNERS = [f"6{i:011d}" for i in range(1, 6)]


def _rows(out: str, group: str, source: str) -> list[tuple[int, int | None, int, int]]:
    """(partition, committed, end, lag) rows of one group and offset source."""
    rows = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 7 and fields[0] == group and fields[3] == source:
            committed = None if fields[4] == "-" else int(fields[4])
            rows.append((int(fields[2]), committed, int(fields[5]), int(fields[6])))
    return rows


async def test_lag_reports_offsets_per_partition_and_how_far_the_read_model_is_behind(
    kafka_bootstrap: str,
    database_url: str,
    topics: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await seed_catalog(database_url)
    for name, value in {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        **topics.env(),
    }.items():
        monkeypatch.setenv(name, value)
    requests = [completion(learner, f"lag-{i}") for i, learner in enumerate(LEARNERS)]
    requests += [completion(LEARNERS[0], "lag-extra")]
    async with running_ledger(kafka_bootstrap, database_url, topics) as settings:
        await produce(kafka_bootstrap, topics.completions, list(requests))
        connection = await asyncpg.connect(database_url)
        try:

            async def published() -> bool:
                row = await connection.fetchrow(
                    "SELECT (SELECT count(*) FROM credit_log) AS n, "
                    "(SELECT last_position FROM relay_progress WHERE topic = $1) AS relayed",
                    topics.ledger_entries,
                )
                return bool(row["n"] == len(requests) and row["relayed"])

            await eventually(published, what="entries appended and relayed")
            await eventually(
                lambda: _relay_done(connection, topics.ledger_entries, len(requests)),
                what="the relay to publish every entry",
            )
            argv = ["lag", "--ledger-group", settings.consumer_group,
                    "--projector-group", f"projector-{topics.ledger_entries}"]  # fmt: skip

            async def ledger_committed_in_kafka() -> bool:
                assert await asyncio.to_thread(run, build_parser().parse_args(argv)) == 0
                out = capsys.readouterr().out
                rows = _rows(out, settings.consumer_group, "kafka")
                return len(rows) == topics.partitions and sum(r[3] for r in rows) == 0

            await eventually(ledger_committed_in_kafka, what="the ledger's Kafka commits")
            assert await asyncio.to_thread(run, build_parser().parse_args(argv)) == 0
            out = capsys.readouterr().out

            ledger_pg = _rows(out, settings.consumer_group, "postgres")
            assert [r[0] for r in ledger_pg] == list(range(topics.partitions))
            assert sum(r[2] for r in ledger_pg) == len(requests)  # end offsets: every request
            assert all(r[1] == r[2] and r[3] == 0 for r in ledger_pg if r[2])
            # Nobody consumed ledger.entries.v1 under the projector group: all of it is lag.
            projector = _rows(out, f"projector-{topics.ledger_entries}", "kafka")
            assert len(projector) == topics.partitions
            assert all(r[1] is None for r in projector)
            assert sum(r[3] for r in projector) == len(requests)
            assert f"credit log: {len(requests)} entries" in out
            assert "relay: 0 entries not yet published" in out
            assert (
                f"read model: {len(requests)} entries not yet applied "
                f"({len(LEARNERS)} learners behind)" in out
            )

            # Fold all but the last learner's entries into the read model: lag shrinks to it.
            entries, _ = await read_committed_after(connection, LogCursor(), 1000)
            async with connection.transaction():
                await apply_entries(
                    connection, [e for e in entries if e.learner_id != LEARNERS[-1]]
                )
            assert await asyncio.to_thread(run, build_parser().parse_args(argv)) == 0
            out = capsys.readouterr().out
            assert "read model: 1 entries not yet applied (1 learners behind)" in out
        finally:
            await connection.close()


async def _relay_done(connection: asyncpg.Connection, topic: str, expected: int) -> bool:
    cursor = await connection.fetchrow(
        "SELECT last_tx_id::text AS tx, last_position FROM relay_progress WHERE topic = $1", topic
    )
    if cursor is None:
        return False
    remaining = await connection.fetchval(
        "SELECT count(*) FROM credit_log WHERE (tx_id, position) > ($1::text::xid8, $2::bigint)",
        cursor["tx"],
        cursor["last_position"],
    )
    return bool(remaining == 0 and expected > 0)
