"""``ledgerctl replay projections``: rebuild beside the live model, resume, switch atomically.

The query service answers ``GetTranscript`` in a loop for the whole replay (zero failures), live
traffic keeps arriving, a first replay is interrupted half-way and the CLI resumes it, and
afterwards every transcript equals the fold of the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from typing import Any

import asyncpg
import grpc
import pytest

from learnerledger.ctl.main import build_parser, run
from learnerledger.replay.rebuild import (
    ReplayInterrupted,
    ReplayStatus,
    connect_as_read_model_owner,
    run_replay,
    start_or_resume,
    unfinished,
)
from learnerledger.v1 import transcript_query_pb2 as pb
from tests.conftest import StackInfo, new_database
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    revocation,
    running_ledger,
    seed_catalog,
)
from tests.support.projector import log_equals_read_model, log_heads, projected, running_projector
from tests.support.query import bearer, running_query, tokens

pytestmark = pytest.mark.integration

READER = "711111111111"
LEARNERS = [READER] + [f"7{i:011d}" for i in range(2, 41)]


async def test_a_replay_rebuilds_beside_the_live_model_resumes_and_switches_without_downtime(
    kafka_bootstrap: str, database_url: str, topics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_catalog(database_url)
    university, _ = await tokens(database_url)
    for name, value in {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        **topics.env(),
    }.items():
        monkeypatch.setenv(name, value)
    first_wave = [consent(READER)]
    for i, learner in enumerate(LEARNERS):
        first_wave += [completion(learner, f"r-{i}-a"), completion(learner, f"r-{i}-b",
                       issuer_id="nptel", course_id="os-301")]  # fmt: skip
    first_wave += [revocation(LEARNERS[3], "r-3-a")]
    calls = {"ok": 0, "failed": 0}
    failures: list[str] = []
    stop_reading = asyncio.Event()

    async with (
        running_ledger(kafka_bootstrap, database_url, topics),
        running_projector(
            kafka_bootstrap, database_url, topics.ledger_entries, f"p-{topics.ledger_entries}"
        ),
        running_query(database_url) as stub,
    ):
        await produce(kafka_bootstrap, topics.completions, list(first_wave))

        async def projected_all() -> bool:
            heads = await log_heads(database_url, LEARNERS)
            return len(heads) == len(LEARNERS) and await projected(database_url, LEARNERS) == heads

        await eventually(projected_all, what="the live projection")

        # A projection bug, simulated: the live model lost one credential.
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(
                "DELETE FROM read_credentials WHERE learner_id = $1 AND sequence = 3", READER
            )
        finally:
            await connection.close()
        assert await log_equals_read_model(database_url) == [READER]

        async def read_in_a_loop() -> None:
            while not stop_reading.is_set():
                try:
                    reply = await stub.GetTranscript(
                        pb.GetTranscriptRequest(learner_id=READER),
                        metadata=bearer(university),
                        timeout=10,
                    )
                    assert reply.transcript.last_sequence >= 3
                    calls["ok"] += 1
                except (grpc.aio.AioRpcError, AssertionError) as exc:
                    calls["failed"] += 1
                    failures.append(repr(exc)[:300])
                await asyncio.sleep(0.005)

        reader = asyncio.create_task(read_in_a_loop())
        try:
            # A replay stopped half-way (as if killed between two batches).
            half = await _interrupted_replay(database_url)
            assert 0 < half.entries_applied < half.entries_total

            # Live traffic while the replay is unfinished.
            await produce(
                kafka_bootstrap,
                topics.completions,
                [completion(learner, f"r-live-{i}") for i, learner in enumerate(LEARNERS[:10])],
            )
            # The CLI resumes it (plain progress lines: not a terminal), catches up, switches.
            out = io.StringIO()
            monkeypatch.setattr("sys.stdout", out)
            code = await asyncio.to_thread(
                run, build_parser().parse_args(["replay", "projections", "--batch", "7"])
            )
            monkeypatch.undo()
            text = out.getvalue()
            assert code == 0, text
            assert f"resuming replay {half.replay_id}" in text
            assert "succeeded" in text
            assert " build: " in text or " catch-up: " in text  # plain progress lines

            await produce(
                kafka_bootstrap,
                topics.completions,
                [completion(learner, f"r-after-{i}") for i, learner in enumerate(LEARNERS[:5])],
            )
            await eventually(projected_all, what="the projector on the switched model")
            await asyncio.sleep(0.2)  # a few more reads on the new model
        finally:
            stop_reading.set()
            await reader

    assert failures == []
    assert calls["failed"] == 0
    assert calls["ok"] > 20
    assert await log_equals_read_model(database_url) == []
    connection = await asyncpg.connect(database_url)
    try:
        assert await unfinished(connection) is None
        leftovers = await connection.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'read_model_%'"
        )
        assert leftovers == 0  # the build schema became live; the old tables were dropped
        state = await connection.fetchrow(
            "SELECT state, entries_applied, finished_at FROM read_model_replays "
            "WHERE replay_id = $1",
            half.replay_id,
        )
        assert state["state"] == "succeeded"
        assert state["finished_at"] is not None
        assert state["entries_applied"] >= half.entries_total
    finally:
        await connection.close()


async def _interrupted_replay(database_url: str) -> ReplayStatus:
    # As the CLI that resumes it will: the build schema belongs to the read model's owner.
    connection = await connect_as_read_model_owner(database_url)
    try:
        replay = await start_or_resume(connection, source="log")
        seen: list[ReplayStatus] = []

        def stop_half_way(status: ReplayStatus) -> None:
            seen.append(status)
            if status.entries_applied >= status.entries_total // 2:
                raise ReplayInterrupted

        with contextlib.suppress(ReplayInterrupted):
            await run_replay(connection, replay, batch=7, progress=stop_half_way)
        status = await unfinished(connection)
        assert status is not None
        assert status.replay_id == replay.replay_id
        return status
    finally:
        await connection.close()


async def test_a_replay_for_some_learners_replaces_only_their_rows(
    kafka_bootstrap: str, stack: StackInfo, stack_logins: dict[str, str], topics: Any
) -> None:
    """A subset rebuild fixes one learner's transcript and leaves the others' rows alone (on a
    database of its own: the test above leaves the module's database in its own state)."""
    learners = [READER, "721111111111", "722222222222"]
    async with new_database(stack, stack_logins) as db:
        await seed_catalog(db.url)
        await produce(
            kafka_bootstrap,
            topics.completions,
            [consent(READER)] + [completion(learner, f"s-{learner}") for learner in learners],
        )

        async def projected_all() -> bool:
            heads = await log_heads(db.url, learners)
            return len(heads) == len(learners) and await projected(db.url, learners) == heads

        async with (
            running_ledger(kafka_bootstrap, db.url, topics),
            running_projector(
                kafka_bootstrap, db.url, topics.ledger_entries, f"p-{topics.ledger_entries}"
            ),
        ):
            await eventually(projected_all, what="the live projection")

        connection = await asyncpg.connect(db.url)
        try:
            before = await connection.fetch(
                "SELECT * FROM read_transcripts WHERE learner_id <> $1 ORDER BY learner_id",
                READER,
            )
            assert len(before) == len(learners) - 1
            await connection.execute(
                "UPDATE read_transcripts SET completions_without_credit = 99 WHERE learner_id = $1",
                READER,
            )
            assert await log_equals_read_model(db.url) == [READER]
            replay = await start_or_resume(connection, source="log", learner_ids=[READER])
            final = await run_replay(connection, replay, batch=3)
            assert final.state == "succeeded"
            assert final.learners_done == 1
            assert await log_equals_read_model(db.url) == []
            after = await connection.fetch(
                "SELECT * FROM read_transcripts WHERE learner_id <> $1 ORDER BY learner_id",
                READER,
            )
            assert after == before  # other learners' rows untouched
        finally:
            await connection.close()
