"""The credit log's tree heads, its HTTP server, an insider's rewrite of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from learnerledger.domain.entries import Entry, EntryDraft, EntryKind
from learnerledger.domain.hash_chain import append_to_chain
from learnerledger.postgres.credit_log import (
    learner_entries,
)
from learnerledger.query.service import run_query
from learnerledger.query.settings import QuerySettings
from tests.support.domain import rewritten
from tests.support.ledger import (
    eventually,
)


def refusals() -> float:
    return REGISTRY.get_sample_value("ledger_checkpoint_refusals_total") or 0.0


async def count_entries(url: str, learner: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        count = "SELECT count(*) FROM credit_log WHERE learner_id = $1"
        return int(await connection.fetchval(count, learner))
    finally:
        await connection.close()


async def wait_for_entries(url: str, learner: str, count: int) -> None:
    async def appended() -> bool:
        return await count_entries(url, learner) == count

    await eventually(appended, what=f"{count} entries of learner {learner}")


async def insider_rewrite(admin_url: str, learner: str, at_sequence: int) -> list[bytes]:
    """As the database superuser: give entry ``at_sequence`` 40 credits and re-chain every later
    entry of ``learner`` consistently. Returns the forged entry hashes."""
    superuser = await asyncpg.connect(admin_url)
    try:
        forged = rewritten(await learner_entries(superuser, learner), at_sequence)
        await superuser.execute("ALTER TABLE credit_log DISABLE TRIGGER USER")
        for entry in forged[at_sequence - 1 :]:
            await superuser.execute(
                "UPDATE credit_log SET payload = $3::jsonb, canonical_json = $4, prev_hash = $5, "
                "entry_hash = $6 WHERE learner_id = $1 AND sequence = $2",
                learner,
                entry.sequence,
                json.dumps(entry.payload),
                entry.canonical_json,
                entry.prev_hash,
                entry.entry_hash,
            )
        await superuser.execute("ALTER TABLE credit_log ENABLE TRIGGER USER")
    finally:
        await superuser.close()
    return [entry.entry_hash for entry in forged[at_sequence - 1 :]]


async def tree_head_over_log(url: str) -> tuple[int, str]:
    """Wait until a signed tree head covers every entry of the log; its size and note."""
    connection = await asyncpg.connect(url)
    found: list[Any] = []

    async def covered() -> bool:
        row = await connection.fetchrow(
            """SELECT tree_size, note FROM tree_heads ORDER BY tree_size DESC LIMIT 1"""
        )
        entries = await connection.fetchval("SELECT count(*) FROM credit_log")
        found[:] = [row]
        return row is not None and row["tree_size"] == entries

    try:
        await eventually(covered, what="a signed tree head over the whole log")
    finally:
        await connection.close()
    return int(found[0]["tree_size"]), str(found[0]["note"])


def first_entry(learner_id: str) -> Entry:
    draft = EntryDraft(
        learner_id,
        EntryKind.CONSENT_GRANTED,
        {"university_id": "du"},
        1,
        uuid.uuid4(),
        datetime.now(UTC),
    )
    return append_to_chain(None, draft)


@contextlib.asynccontextmanager
async def running_http(database_url: str) -> AsyncIterator[str]:
    """The query service with its HTTP API on a free port; the API's base URL."""
    settings = QuerySettings(database_url=database_url, grpc_port=0, metrics_port=0, http_port=0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    bound: asyncio.Future[int] = loop.create_future()
    http_bound: asyncio.Future[int] = loop.create_future()
    task = asyncio.create_task(run_query(settings, stop, bound, http_bound))
    port = await asyncio.wait_for(http_bound, 15)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
