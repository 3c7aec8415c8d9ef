"""The projector in-process, and how far the read model has caught up with the log."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from learnerledger.domain.transcript import TranscriptProjection
from learnerledger.postgres import read_model
from learnerledger.postgres.credit_log import learner_entries
from learnerledger.query.projector import run_projector
from learnerledger.query.settings import ProjectorSettings


@contextlib.asynccontextmanager
async def running_projector(
    kafka_bootstrap: str, database_url: str, topic: str, group: str
) -> AsyncIterator[None]:
    settings = ProjectorSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        topic_ledger_entries=topic,
        consumer_group=group,
        metrics_port=0,
        grpc_port=0,
        batch_wait_ms=20,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def log_heads(database_url: str, learners: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT learner_id, max(sequence) AS s FROM credit_log "
            "WHERE learner_id = ANY($1::text[]) GROUP BY learner_id",
            learners,
        )
    finally:
        await connection.close()
    return {r["learner_id"]: r["s"] for r in rows}


async def projected(database_url: str, learners: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT learner_id, last_sequence FROM read_transcripts "
            "WHERE learner_id = ANY($1::text[])",
            learners,
        )
    finally:
        await connection.close()
    return {r["learner_id"]: r["last_sequence"] for r in rows}


async def log_equals_read_model(database_url: str) -> list[str]:
    """Learners whose stored transcript differs from the fold of their log entries."""
    connection = await asyncpg.connect(database_url)
    try:
        learners = [
            r["learner_id"]
            for r in await connection.fetch("SELECT DISTINCT learner_id FROM credit_log")
        ]
        stored = await read_model.load_states(connection, learners)
        wrong = []
        for learner in learners:
            folded = TranscriptProjection.fold(learner, await learner_entries(connection, learner))
            if stored.get(learner) != folded:
                wrong.append(learner)
        extra = await connection.fetchval(
            "SELECT count(*) FROM read_transcripts WHERE learner_id <> ALL($1::text[])", learners
        )
        return wrong + ["<extra rows>"] * int(extra)
    finally:
        await connection.close()
