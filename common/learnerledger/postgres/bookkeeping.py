"""Consumer offsets and rejections: the ledger's bookkeeping beside the credit log.

Offsets are written in the same transaction as the entries and rejections they account for,
so after any crash the consumer resumes exactly after what was committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from learnerledger.postgres import Connection


async def load_offsets(connection: Connection, group_id: str, topic: str) -> dict[int, int]:
    rows = await connection.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
        group_id,
        topic,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def lock_offsets(
    connection: Connection, group_id: str, topic: str, partitions: Sequence[int]
) -> dict[int, int]:
    """The stored next offsets of ``partitions``, locked until the transaction ends.

    A consumer that lost its partitions in a rebalance may still be deciding a batch the new
    owner decides too; whichever commits second waits here and then sees the offsets moved past
    its records, so a record is decided once (and a rejected one is not decided again later, on
    facts that have changed since).
    """
    # A partition's first batch has no row to lock yet: create it (the transaction stores the
    # real offset before it commits); a concurrent insert of the same row waits for this one.
    await connection.execute(
        """INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
           SELECT $1, $2, p, 0 FROM unnest($3::int[]) AS p
           ON CONFLICT (group_id, topic, partition) DO NOTHING""",
        group_id,
        topic,
        list(partitions),
    )
    rows = await connection.fetch(
        """SELECT partition, next_offset FROM consumer_offsets
           WHERE group_id = $1 AND topic = $2 AND partition = ANY($3::int[])
           FOR UPDATE""",
        group_id,
        topic,
        list(partitions),
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def store_offsets(
    connection: Connection, group_id: str, topic: str, next_offsets: Mapping[int, int]
) -> None:
    await connection.executemany(
        """INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (group_id, topic, partition)
           DO UPDATE SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset),
                         updated_at = now()""",
        [(group_id, topic, p, o) for p, o in next_offsets.items()],
    )


@dataclass(frozen=True, slots=True)
class Rejection:
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    detail: str
    original_key: bytes | None
    original_value: bytes
    source_event_id: uuid.UUID | None = None
    issuer_id: str | None = None
    learner_id: str | None = None
    completion_id: str | None = None


async def record_rejections(connection: Connection, rejections: Sequence[Rejection]) -> None:
    if not rejections:
        return
    await connection.executemany(
        """INSERT INTO rejections (source_topic, source_partition, source_offset, source_event_id,
                                   issuer_id, learner_id, completion_id, reason, detail,
                                   original_key, original_value)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING""",
        [
            (
                r.source_topic,
                r.source_partition,
                r.source_offset,
                r.source_event_id,
                r.issuer_id,
                r.learner_id,
                r.completion_id,
                r.reason,
                r.detail,
                r.original_key,
                r.original_value,
            )
            for r in rejections
        ],
    )
