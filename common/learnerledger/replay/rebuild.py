"""Rebuild the read model beside the live one and switch to it atomically.

``ledgerctl replay projections`` (and ``LedgerAdminService.StartReplay``) run :func:`run_replay`:

1. **Build.** A new schema ``read_model_<id>`` gets empty ``read_transcripts`` /
   ``read_credentials`` of the live tables' shape. Entries are folded into it with the
   projector's own ``read_model.apply_entries`` (``search_path`` puts the build schema first),
   from the credit log in (learner, sequence) order, or from ``ledger.entries.v1`` from its
   earliest offset. Each batch commits together with the replay's progress
   (``read_model_replays``), so an interrupted replay resumes exactly where it stopped: run the
   command again.
2. **Catch up.** Learners whose log head is beyond the build's fold are folded up to it (the
   log is the source of truth), until nothing is behind.
3. **Switch**, one transaction: the live tables are locked against writers (the projector
   waits; readers do not), the last entries are caught up, and then either the tables are
   swapped (full rebuild: the live tables move to a retired schema, the built ones into
   ``public``) or, for a set of learners, their rows are replaced. Readers see the old model or
   the new one, never a mix; a query in flight during the swap waits a moment, it does not fail.
   The retired tables are dropped after the commit. The projector resumes on the new tables; its
   fold is idempotent by (learner, sequence), so whatever it delivers next is skipped or applied.

This runs as the owner of the read model's tables, the NOLOGIN role ``ll_read_model_owner``
(migration 0009; granted to ``ll_admin``): it creates schemas and moves tables. Connect with
:func:`connect_as_read_model_owner`, so that what it creates is owned by that role too and no
login ever owns a table.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from learnerledger.domain.entries import Entry
from learnerledger.kafka.codec import decode_ledger_entry
from learnerledger.kafka.security import client_options
from learnerledger.postgres import Connection
from learnerledger.postgres.credit_log import entry_from_row
from learnerledger.postgres.read_model import apply_entries

log = structlog.get_logger(__name__)

_REPLAY_LOCK = 0x4C4C_5250  # "LLRP": one replay process at a time
_ENTRY_COLUMNS = (
    "position, learner_id, sequence, kind, payload, canonical_json, rules_version, "
    "source_event_id, source_partition, source_offset, prev_hash, entry_hash, recorded_at"
)
_TABLES = ("read_transcripts", "read_credentials")
READ_MODEL_OWNER = "ll_read_model_owner"


class ReplayConflict(RuntimeError):
    """Another replay is unfinished (with other parameters) or running right now."""


class ReplayInterrupted(Exception):
    """Raised by a progress callback to stop a replay between batches (it stays resumable)."""


@dataclass(slots=True)
class ReplayStatus:
    replay_id: uuid.UUID
    source: str
    learner_ids: list[str]
    state: str
    build_schema: str
    entries_applied: int = 0
    entries_total: int = 0
    learners_done: int = 0
    through_position: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error_message: str = ""
    cursor_learner: str = ""
    cursor_sequence: int = 0
    kafka_offsets: dict[str, int] = field(default_factory=dict)
    phase: str = "build"


ProgressCallback = Callable[[ReplayStatus], None]


def _status(row: asyncpg.Record) -> ReplayStatus:
    return ReplayStatus(
        replay_id=row["replay_id"],
        source=row["source"],
        learner_ids=list(row["learner_ids"]),
        state=row["state"],
        build_schema=row["build_schema"],
        entries_applied=row["entries_applied"],
        entries_total=row["entries_total"],
        learners_done=row["learners_done"],
        through_position=row["through_position"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error_message=row["error_message"],
        cursor_learner=row["cursor_learner"],
        cursor_sequence=row["cursor_sequence"],
        kafka_offsets=json.loads(row["kafka_offsets"]),
    )


async def connect_as_read_model_owner(dsn: str) -> asyncpg.Connection:
    """A connection for a replay: a login that is a member of ``ll_read_model_owner`` (through
    ``ll_admin``), acting as that role."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"SET ROLE {READ_MODEL_OWNER}")
    except BaseException:
        await connection.close()
        raise
    return connection


async def get_status(connection: Connection, replay_id: uuid.UUID) -> ReplayStatus | None:
    row = await connection.fetchrow(
        "SELECT * FROM read_model_replays WHERE replay_id = $1", replay_id
    )
    return None if row is None else _status(row)


async def unfinished(connection: Connection) -> ReplayStatus | None:
    row = await connection.fetchrow(
        "SELECT * FROM read_model_replays WHERE state IN ('pending', 'running')"
    )
    return None if row is None else _status(row)


async def start_or_resume(
    connection: Connection, *, source: str, learner_ids: Sequence[str] = ()
) -> ReplayStatus:
    """The unfinished replay with these parameters, or a new one (PENDING)."""
    learners = sorted(set(learner_ids))
    current = await unfinished(connection)
    if current is not None:
        if current.source != source or current.learner_ids != learners:
            raise ReplayConflict(
                f"replay {current.replay_id} (source {current.source}, "
                f"{len(current.learner_ids) or 'all'} learners) is unfinished; run it again "
                "with the same arguments to resume it"
            )
        return current
    replay_id = uuid.uuid4()
    total = await connection.fetchval(
        "SELECT count(*) FROM credit_log WHERE cardinality($1::text[]) = 0 "
        "OR learner_id = ANY($1::text[])",
        learners,
    )
    row = await connection.fetchrow(
        """INSERT INTO read_model_replays (replay_id, source, learner_ids, state, build_schema,
                                           entries_total)
           VALUES ($1, $2, $3, 'pending', $4, $5) RETURNING *""",
        replay_id,
        source,
        learners,
        f"read_model_{replay_id.hex[:16]}",
        total,
    )
    assert row is not None  # INSERT ... RETURNING
    return _status(row)


async def _create_build_tables(connection: Connection, schema: str) -> None:
    if await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
    ):
        return  # resuming: the tables and what they hold are the replay's progress
    async with connection.transaction():
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        for table in _TABLES:
            await connection.execute(
                f'CREATE TABLE "{schema}".{table} (LIKE public.{table} INCLUDING ALL)'
            )
        await connection.execute(
            f'ALTER TABLE "{schema}".read_credentials ADD CONSTRAINT '
            f'read_credentials_learner_id_fkey FOREIGN KEY (learner_id) REFERENCES "{schema}"'
            ".read_transcripts (learner_id)"
        )
        tables = ", ".join(f'"{schema}".{t}' for t in _TABLES)
        await connection.execute(f"REVOKE ALL ON {tables} FROM PUBLIC")
        await connection.execute(f"GRANT SELECT, INSERT, UPDATE ON {tables} TO ll_projector")
        await connection.execute(f"GRANT SELECT ON {tables} TO ll_query, ll_admin")


async def _build_first(connection: Connection, schema: str) -> None:
    await connection.execute(f'SET LOCAL search_path TO "{schema}", public')


async def _save_progress(connection: Connection, status: ReplayStatus) -> None:
    await connection.execute(
        """UPDATE read_model_replays SET state = $2, cursor_learner = $3, cursor_sequence = $4,
                  kafka_offsets = $5, entries_applied = $6, learners_done = $7,
                  through_position = $8, started_at = coalesce(started_at, now())
            WHERE replay_id = $1""",
        status.replay_id,
        status.state,
        status.cursor_learner,
        status.cursor_sequence,
        json.dumps(status.kafka_offsets),
        status.entries_applied,
        status.learners_done,
        status.through_position,
    )


async def _apply_batch(
    connection: Connection, status: ReplayStatus, entries: Sequence[Entry]
) -> None:
    """Fold ``entries`` into the build schema and store the progress, in one transaction."""
    async with connection.transaction():
        await _build_first(connection, status.build_schema)
        result = await apply_entries(connection, entries)
        status.entries_applied += result.applied + result.filled
        if entries:
            status.through_position = max(
                status.through_position, max(e.position or 0 for e in entries)
            )
        await _save_progress(connection, status)


async def _build_from_log(
    connection: Connection, status: ReplayStatus, batch: int, progress: ProgressCallback
) -> None:
    while True:
        rows = await connection.fetch(
            f"""SELECT {_ENTRY_COLUMNS} FROM credit_log
                 WHERE (learner_id, sequence) > ($1, $2)
                   AND (cardinality($3::text[]) = 0 OR learner_id = ANY($3::text[]))
                 ORDER BY learner_id, sequence LIMIT $4""",
            status.cursor_learner,
            status.cursor_sequence,
            status.learner_ids,
            batch,
        )
        if not rows:
            return
        entries = [entry_from_row(r) for r in rows]
        learners = {e.learner_id for e in entries}
        status.learners_done += len(learners - {entries[-1].learner_id})
        if status.cursor_learner and status.cursor_learner not in learners:
            status.learners_done += 1  # the previous batch ended exactly with its last entry
        status.cursor_learner = entries[-1].learner_id
        status.cursor_sequence = entries[-1].sequence
        await _apply_batch(connection, status, entries)
        progress(status)


async def _build_from_kafka(
    connection: Connection,
    status: ReplayStatus,
    batch: int,
    progress: ProgressCallback,
    *,
    bootstrap_servers: str,
    topic: str,
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        client_id=f"replay-{status.replay_id}",
        max_poll_records=batch,
        **client_options(),
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions(bootstrap_servers, topic)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        beginnings = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, status.kafka_offsets.get(str(tp.partition), beginnings[tp]))
        wanted = set(status.learner_ids)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            fetched = await consumer.getmany(timeout_ms=500, max_records=batch)
            entries = []
            for tp, records in fetched.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    entry = decode_ledger_entry(record.value or b"")
                    if not wanted or entry.learner_id in wanted:
                        entries.append(entry)
                if records:
                    status.kafka_offsets[str(tp.partition)] = min(records[-1].offset + 1, ends[tp])
            if fetched:
                await _apply_batch(connection, status, entries)
                progress(status)
    finally:
        await consumer.stop()


async def _partitions(bootstrap_servers: str, topic: str) -> list[int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="replay", **client_options()
    )
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        p["partition"] for t in described if t["error_code"] == 0 for p in t["partitions"]
    )


async def _catch_up(connection: Connection, status: ReplayStatus, batch: int) -> int:
    """Fold every entry of the log that the build schema lacks; return how many."""
    caught = 0
    while True:
        async with connection.transaction():
            await _build_first(connection, status.build_schema)
            rows = await connection.fetch(
                f"""SELECT c.{_ENTRY_COLUMNS.replace(", ", ", c.")}
                      FROM credit_log AS c
                      LEFT JOIN read_transcripts AS r USING (learner_id)
                     WHERE c.sequence > coalesce(r.last_sequence, 0)
                       AND (cardinality($1::text[]) = 0 OR c.learner_id = ANY($1::text[]))
                     ORDER BY c.learner_id, c.sequence LIMIT $2""",
                status.learner_ids,
                batch,
            )
            if not rows:
                return caught
            entries = [entry_from_row(r) for r in rows]
            result = await apply_entries(connection, entries)
            status.entries_applied += result.applied + result.filled
            status.through_position = max(
                status.through_position, max(e.position or 0 for e in entries)
            )
            await _save_progress(connection, status)
            caught += len(entries)


async def _switch(connection: Connection, status: ReplayStatus, batch: int) -> None:
    schema = status.build_schema
    retired = f"{schema}_retired"
    async with connection.transaction():
        # Writers (the projector) wait from here to the commit; readers go on reading.
        await connection.execute(
            "LOCK TABLE public.read_transcripts, public.read_credentials IN EXCLUSIVE MODE"
        )
        await _catch_up(connection, status, batch)
        await connection.execute("SET LOCAL search_path TO public")
        status.learners_done = int(
            await connection.fetchval(f'SELECT count(*) FROM "{schema}".read_transcripts')
        )
        if status.learner_ids:
            await connection.execute(
                "DELETE FROM public.read_credentials WHERE learner_id = ANY($1::text[])",
                status.learner_ids,
            )
            await connection.execute(
                "DELETE FROM public.read_transcripts WHERE learner_id = ANY($1::text[])",
                status.learner_ids,
            )
            for table in _TABLES:
                await connection.execute(
                    f'INSERT INTO public.{table} SELECT * FROM "{schema}".{table}'
                )
        else:
            await connection.execute(f'CREATE SCHEMA "{retired}"')
            for table in reversed(_TABLES):
                await connection.execute(f'ALTER TABLE public.{table} SET SCHEMA "{retired}"')
            for table in _TABLES:
                await connection.execute(f'ALTER TABLE "{schema}".{table} SET SCHEMA public')
        status.state = "succeeded"
        await _save_progress(connection, status)
        await connection.execute(
            "UPDATE read_model_replays SET finished_at = now() WHERE replay_id = $1",
            status.replay_id,
        )
    for dropped in (schema, retired):
        await connection.execute(f'DROP SCHEMA IF EXISTS "{dropped}" CASCADE')


async def run_replay(
    connection: Connection,
    replay: ReplayStatus,
    *,
    batch: int = 2000,
    progress: ProgressCallback = lambda status: None,
    bootstrap_servers: str | None = None,
    entries_topic: str = "ledger.entries.v1",
) -> ReplayStatus:
    """Build, catch up and switch (see the module docstring); resumes a replay in progress.

    ``progress`` is called after every batch; raising :class:`ReplayInterrupted` from it stops
    the replay with its progress kept. Any other error marks the replay FAILED (the live read
    model is untouched; the build schema stays for a post-mortem until the replay is resumed).
    """
    if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", _REPLAY_LOCK):
        raise ReplayConflict("another process is running a replay right now")
    status = await get_status(connection, replay.replay_id) or replay
    try:
        if status.state in ("succeeded", "failed"):
            return status
        await _create_build_tables(connection, status.build_schema)
        status.state = "running"
        await _save_progress(connection, status)
        progress(status)
        if status.source == "kafka":
            if bootstrap_servers is None:
                raise ValueError("a replay from Kafka needs bootstrap_servers")
            await _build_from_kafka(
                connection,
                status,
                batch,
                progress,
                bootstrap_servers=bootstrap_servers,
                topic=entries_topic,
            )
        else:
            await _build_from_log(connection, status, batch, progress)
        status.phase = "catch-up"
        while await _catch_up(connection, status, batch):
            progress(status)
        status.phase = "switch"
        await _switch(connection, status, batch)
        status.phase = "done"
        progress(status)
        return await get_status(connection, status.replay_id) or status
    except ReplayInterrupted:
        log.info("replay_interrupted", replay_id=str(status.replay_id))
        raise
    except Exception as exc:
        with contextlib.suppress(Exception):
            await connection.execute(
                "UPDATE read_model_replays SET state = 'failed', error_message = $2, "
                "finished_at = now() WHERE replay_id = $1",
                status.replay_id,
                f"{type(exc).__name__}: {exc}"[:2000],
            )
        raise
    finally:
        with contextlib.suppress(Exception):
            await connection.execute("SELECT pg_advisory_unlock($1)", _REPLAY_LOCK)
