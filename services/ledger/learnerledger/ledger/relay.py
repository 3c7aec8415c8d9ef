"""The outbox relay: publishes the credit log to ``ledger.entries.v1`` in the log's order.

The log itself is the outbox. The relay follows it with ``read_committed_after`` (commit-safe
order, never skipping a late-committing row), publishes each entry keyed by learner and, once
Kafka acknowledged the batch, records how far it got. A crash between the two republishes a
batch: delivery is at least once, and readers are idempotent by (learner, sequence).
One relay is active at a time (a PostgreSQL advisory lock), so per-learner order holds.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from learnerledger.kafka.codec import encode_ledger_entry
from learnerledger.kafka.producer import DurableProducer
from learnerledger.postgres import Connection
from learnerledger.postgres.credit_log import LogCursor, read_committed_after
from learnerledger.postgres.errors import DATABASE_UNREACHABLE
from learnerledger.runtime import wait_or_stop

log = structlog.get_logger(__name__)

_RELAY_LOCK = 0x4C4C_5245  # "LLRE"
PUBLISHED = Counter("ledger_entries_published_total", "Entries published to ledger.entries.v1")
RELAY_POSITION = Gauge("ledger_relay_position", "Highest log position published")


async def load_cursor(connection: Connection, topic: str) -> LogCursor:
    row = await connection.fetchrow(
        "SELECT last_tx_id::text::bigint AS tx, last_position FROM relay_progress WHERE topic = $1",
        topic,
    )
    return LogCursor() if row is None else LogCursor(row["tx"], row["last_position"])


async def store_cursor(connection: Connection, topic: str, cursor: LogCursor) -> None:
    await connection.execute(
        """INSERT INTO relay_progress (topic, last_tx_id, last_position)
           VALUES ($1, $2::text::xid8, $3)
           ON CONFLICT (topic) DO UPDATE
           SET last_tx_id = EXCLUDED.last_tx_id, last_position = EXCLUDED.last_position,
               updated_at = now()""",
        topic,
        str(cursor.tx_id),
        cursor.position,
    )


async def relay_entries(
    *,
    pool: asyncpg.Pool,
    producer: DurableProducer,
    topic: str,
    batch: int,
    idle_ms: int,
    stop: asyncio.Event,
) -> None:
    async with pool.acquire() as connection:
        while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
            log.info("relay_standby", reason="another relay holds the lock")
            if await wait_or_stop(stop, 2.0):
                return
        try:
            cursor = await load_cursor(connection, topic)
            log.info("relay_started", topic=topic, position=cursor.position)
            while not stop.is_set():
                entries, after = await read_committed_after(connection, cursor, batch)
                if not entries:
                    await wait_or_stop(stop, idle_ms / 1000)
                    continue
                sends = [
                    await producer.send(
                        topic,
                        key=entry.learner_id.encode(),
                        value=encode_ledger_entry(entry),
                        headers=[("source_event_id", str(entry.source_event_id).encode())],
                    )
                    for entry in entries
                ]
                await asyncio.gather(*sends)
                await store_cursor(connection, topic, after)
                cursor = after
                PUBLISHED.inc(len(entries))
                RELAY_POSITION.set(cursor.position)
        finally:
            # A lost connection has already dropped its session lock: nothing to unlock.
            with contextlib.suppress(*DATABASE_UNREACHABLE):
                await connection.execute("SELECT pg_advisory_unlock($1)", _RELAY_LOCK)
