"""Who read my record: the access log of universities' and admins' reads (table
``record_accesses``, migration 0030), its pages for the learner, and its retention.

A page token is URL-safe base64 of ``{"v":1,"t":<accessed_at, µs since the epoch>,"i":<access
id>,"l":<learner>}``: keyset paging, newest first, bound to the learner it was issued for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from prometheus_client import Counter

from learnerledger.postgres import Connection
from learnerledger.postgres.errors import DATABASE_UNREACHABLE
from learnerledger.rpc import page_tokens

log = structlog.get_logger(__name__)

ACCESSES_RECORDED = Counter(
    "query_record_accesses_total", "Reads of learners' records written to the access log"
)
ACCESSES_PRUNED = Counter(
    "query_record_accesses_pruned_total", "Access log rows deleted by the retention"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_PRUNE_FAILURES: tuple[type[Exception], ...] = (*DATABASE_UNREACHABLE, asyncpg.PostgresError)


class InvalidAccessPageToken(ValueError):
    """Not a token this server issued for the same learner."""


@dataclass(frozen=True, slots=True)
class RecordAccess:
    access_id: int
    learner_id: str
    reader_kind: str
    reader_id: str
    method: str
    accessed_at: datetime


async def record(
    connection: Connection,
    learner_ids: Iterable[str],
    *,
    reader_kind: str,
    reader_id: str,
    method: str,
) -> None:
    """One row per learner read (a batch writes one row for each learner it answered)."""
    ids = sorted(set(learner_ids))
    if not ids:
        return
    await connection.execute(
        "INSERT INTO record_accesses (learner_id, reader_kind, reader_id, method) "
        "SELECT unnest($1::text[]), $2, $3, $4",
        ids,
        reader_kind,
        reader_id,
        method,
    )
    ACCESSES_RECORDED.inc(len(ids))


async def page(
    connection: Connection,
    learner_id: str,
    *,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[RecordAccess]:
    """The learner's accesses newest first, strictly before the ``before`` cursor."""
    rows = await connection.fetch(
        """SELECT access_id, learner_id, reader_kind, reader_id, method, accessed_at
             FROM record_accesses
            WHERE learner_id = $1
              AND ($2::timestamptz IS NULL OR (accessed_at, access_id) < ($2, $3))
            ORDER BY accessed_at DESC, access_id DESC
            LIMIT $4""",
        learner_id,
        None if before is None else before[0],
        0 if before is None else before[1],
        limit,
    )
    return [
        RecordAccess(
            access_id=int(r["access_id"]),
            learner_id=str(r["learner_id"]),
            reader_kind=str(r["reader_kind"]),
            reader_id=str(r["reader_id"]),
            method=str(r["method"]),
            accessed_at=r["accessed_at"],
        )
        for r in rows
    ]


def encode_page_token(last: RecordAccess) -> str:
    micros = (last.accessed_at - _EPOCH) // timedelta(microseconds=1)
    return page_tokens.pack({"v": 1, "t": micros, "i": last.access_id, "l": last.learner_id})


def decode_page_token(token: str, learner_id: str) -> tuple[datetime, int] | None:
    if not token:
        return None
    try:
        body = page_tokens.unpack(token)
    except page_tokens.MalformedPageToken as exc:
        raise InvalidAccessPageToken("not a page token of this server") from exc
    if (
        not isinstance(body, dict)
        or body.get("v") != 1
        or not isinstance(body.get("t"), int)
        or not isinstance(body.get("i"), int)
        or isinstance(body.get("t"), bool)
    ):
        raise InvalidAccessPageToken("not a page token of this server")
    if body.get("l") != learner_id:
        raise InvalidAccessPageToken("the page token was issued for another learner_id")
    try:
        instant = _EPOCH + timedelta(microseconds=body["t"])
    except OverflowError as exc:
        raise InvalidAccessPageToken("not a page token of this server") from exc
    return instant, body["i"]


async def prune(connection: Connection, *, older_than: datetime, batch: int = 10_000) -> int:
    """Delete accesses recorded before ``older_than`` (in batches); how many were deleted."""
    deleted = 0
    while True:
        count = await connection.fetchval(
            """WITH doomed AS (
                   SELECT access_id FROM record_accesses WHERE accessed_at < $1 LIMIT $2)
               , gone AS (
                   DELETE FROM record_accesses WHERE access_id IN (SELECT access_id FROM doomed)
                   RETURNING 1)
               SELECT count(*) FROM gone""",
            older_than,
            batch,
        )
        deleted += int(count)
        if count < batch:
            ACCESSES_PRUNED.inc(deleted)
            return deleted


async def retention_worker(
    pool: asyncpg.Pool, *, retention: timedelta, interval_s: float, stop: asyncio.Event
) -> None:
    """Every ``interval_s``, delete the accesses older than ``retention`` (until ``stop``)."""
    while not stop.is_set():
        try:
            async with pool.acquire() as connection:
                deleted = await prune(connection, older_than=datetime.now(UTC) - retention)
            if deleted:
                log.info("record_accesses_pruned", deleted=deleted, retention_days=retention.days)
        except _PRUNE_FAILURES as exc:
            log.warning("record_accesses_prune_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
