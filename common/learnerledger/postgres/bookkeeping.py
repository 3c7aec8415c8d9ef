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


async def store_offsets(
    connection: Connection, group_id: str, topic: str, next_offsets: Mapping[int, int]
) -> None:
    await connection.executemany(
        """INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (group_id, topic, partition)
           DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()""",
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
