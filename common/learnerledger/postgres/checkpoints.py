"""Signed checkpoints in PostgreSQL: what they cover, storing them, reading and verifying them.

A checkpoint row holds the signed statement's fields; version-2 checkpoints also record, in
``checkpoint_heads``, the chain heads that changed since their predecessor (bound by the signed
``changed_root``). Nothing here trusts those rows: ``verify_checkpoints`` checks them against the
signatures (``domain.checkpoints.check_sequence``) and against the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

import asyncpg

from learnerledger.domain.checkpoints import (
    Checkpoint,
    Coverage,
    Discrepancy,
    RecordedCheckpoint,
    SequenceCheck,
    SignedCheckpoint,
    check_sequence,
    coverage_of,
)
from learnerledger.domain.entries import Entry
from learnerledger.domain.hash_chain import ChainHead, heads_root
from learnerledger.postgres import Connection
from learnerledger.postgres.credit_log import entry_from_row

_CHECKPOINT_COLUMNS = """checkpoint_id, position, tx_horizon::text::bigint AS horizon, root_hash,
    learner_count, signed_at, signature, public_key, previous_digest, changed_root, changed_count"""


async def heads_below(connection: Connection, horizon: int) -> tuple[list[ChainHead], int]:
    """Every learner's chain head among the rows of transactions older than ``horizon``, and the
    highest position among those rows: exactly what a checkpoint with that horizon covers."""
    rows = await connection.fetch(
        """SELECT DISTINCT ON (learner_id) learner_id, sequence, entry_hash
             FROM credit_log WHERE tx_id < $1::text::xid8
            ORDER BY learner_id, sequence DESC""",
        str(horizon),
    )
    heads = [ChainHead(r["learner_id"], r["sequence"], bytes(r["entry_hash"])) for r in rows]
    position = await connection.fetchval(
        "SELECT coalesce(max(position), 0) FROM credit_log WHERE tx_id < $1::text::xid8",
        str(horizon),
    )
    return heads, int(position)


async def finished_horizon(connection: Connection) -> int:
    """The oldest transaction still running: every older one has committed or aborted."""
    return int(
        await connection.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    )


async def store_checkpoint(
    connection: Connection, signed: SignedCheckpoint, changed: Sequence[ChainHead] = ()
) -> int:
    """Append ``signed`` and the heads it changed (one transaction); return its number."""
    cp = signed.checkpoint
    async with connection.transaction():
        number: int = await connection.fetchval(
            """INSERT INTO checkpoints (position, tx_horizon, root_hash, learner_count, signed_at,
                                        signature, public_key, statement, previous_digest,
                                        changed_root, changed_count)
               VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               RETURNING checkpoint_id""",
            cp.position,
            str(cp.tx_horizon),
            cp.root_hash,
            cp.learner_count,
            cp.signed_at,
            signed.signature,
            signed.public_key,
            cp.statement(),
            cp.previous,
            cp.changed_root,
            cp.changed_count if cp.records_heads else None,
        )
        if changed:
            await connection.copy_records_to_table(
                "checkpoint_heads",
                records=[(number, h.learner_id, h.sequence, h.entry_hash) for h in changed],
                columns=["checkpoint_id", "learner_id", "sequence", "entry_hash"],
            )
    return number


def _recorded(row: asyncpg.Record, changed: tuple[ChainHead, ...] = ()) -> RecordedCheckpoint:
    previous = row["previous_digest"]
    changed_root = row["changed_root"]
    checkpoint = Checkpoint(
        row["position"],
        row["horizon"],
        bytes(row["root_hash"]),
        row["learner_count"],
        row["signed_at"],
        previous=None if previous is None else bytes(previous),
        changed_root=None if changed_root is None else bytes(changed_root),
        changed_count=row["changed_count"] or 0,
    )
    signed = SignedCheckpoint(checkpoint, bytes(row["signature"]), bytes(row["public_key"]))
    return RecordedCheckpoint(row["checkpoint_id"], signed, changed)


async def latest_recorded(connection: Connection) -> RecordedCheckpoint | None:
    """The newest stored checkpoint with its number (without its changed heads)."""
    row: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY checkpoint_id DESC LIMIT 1"
    )
    return None if row is None else _recorded(row)


async def latest_checkpoint(connection: Connection) -> SignedCheckpoint | None:
    recorded = await latest_recorded(connection)
    return None if recorded is None else recorded.signed


async def recorded_sequence(connection: Connection) -> list[RecordedCheckpoint]:
    """Every stored checkpoint in order, each with the heads it records."""
    rows = await connection.fetch(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY checkpoint_id"
    )
    changed: dict[int, list[ChainHead]] = {}
    for r in await connection.fetch(
        """SELECT checkpoint_id, learner_id, sequence, entry_hash FROM checkpoint_heads
            ORDER BY checkpoint_id, learner_id"""
    ):
        changed.setdefault(r["checkpoint_id"], []).append(
            ChainHead(r["learner_id"], r["sequence"], bytes(r["entry_hash"]))
        )
    return [_recorded(r, tuple(changed.get(r["checkpoint_id"], ()))) for r in rows]


async def recorded_heads_through(connection: Connection, number: int) -> dict[str, ChainHead]:
    """Every learner's newest recorded head among checkpoints up to ``number``."""
    rows = await connection.fetch(
        """SELECT DISTINCT ON (learner_id) learner_id, sequence, entry_hash
             FROM checkpoint_heads WHERE checkpoint_id <= $1
            ORDER BY learner_id, checkpoint_id DESC""",
        number,
    )
    return {
        r["learner_id"]: ChainHead(r["learner_id"], r["sequence"], bytes(r["entry_hash"]))
        for r in rows
    }


@dataclass(frozen=True, slots=True)
class SignedHeadNow:
    """A learner's head as of a checkpoint, and the hash the log holds at that sequence today."""

    signed_head: ChainHead | None
    stored_hash: bytes | None


async def signed_heads_of_new_learners(
    connection: Connection, previous: int | None, from_horizon: int, to_horizon: int
) -> dict[str, SignedHeadNow]:
    """For each learner with entries in ``[from_horizon, to_horizon)``: its head as of checkpoint
    ``previous`` (none if ``previous`` is None or the learner is new) and the log's hash there."""
    rows = await connection.fetch(
        """WITH touched AS (
               SELECT DISTINCT learner_id FROM credit_log
                WHERE tx_id >= $2::text::xid8 AND tx_id < $3::text::xid8),
           signed AS (
               SELECT DISTINCT ON (h.learner_id) h.learner_id, h.sequence, h.entry_hash
                 FROM checkpoint_heads h JOIN touched USING (learner_id)
                WHERE h.checkpoint_id <= $1
                ORDER BY h.learner_id, h.checkpoint_id DESC)
           SELECT t.learner_id, s.sequence, s.entry_hash, c.entry_hash AS stored_hash
             FROM touched t
             LEFT JOIN signed s USING (learner_id)
             LEFT JOIN credit_log c ON c.learner_id = s.learner_id AND c.sequence = s.sequence""",
        previous if previous is not None else 0,
        str(from_horizon),
        str(to_horizon),
    )
    found = {}
    for r in rows:
        head = (
            None
            if r["sequence"] is None
            else ChainHead(r["learner_id"], r["sequence"], bytes(r["entry_hash"]))
        )
        stored = None if r["stored_hash"] is None else bytes(r["stored_hash"])
        found[r["learner_id"]] = SignedHeadNow(head, stored)
    return found


async def entries_between(
    connection: Connection, from_horizon: int, to_horizon: int
) -> AsyncIterator[Entry]:
    """The entries written by transactions in ``[from_horizon, to_horizon)``, by learner and
    sequence (call inside a transaction: it reads with a cursor)."""
    async for row in connection.cursor(
        """SELECT position, learner_id, sequence, kind, payload, canonical_json, rules_version,
                  source_event_id, source_partition, source_offset, prev_hash, entry_hash,
                  recorded_at
             FROM credit_log WHERE tx_id >= $1::text::xid8 AND tx_id < $2::text::xid8
            ORDER BY learner_id, sequence""",
        str(from_horizon),
        str(to_horizon),
        prefetch=5000,
    ):
        yield entry_from_row(row)


async def stored_hashes(
    connection: Connection, places: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], bytes]:
    """The log's entry hash at each (learner, sequence) that exists."""
    learners, sequences = [], []
    for learner, sequence in set(places):
        learners.append(learner)
        sequences.append(sequence)
    rows = await connection.fetch(
        """SELECT c.learner_id, c.sequence, c.entry_hash
             FROM unnest($1::text[], $2::bigint[]) AS p(learner_id, sequence)
             JOIN credit_log c USING (learner_id, sequence)""",
        learners,
        sequences,
    )
    return {(r["learner_id"], r["sequence"]): bytes(r["entry_hash"]) for r in rows}


@dataclass(frozen=True, slots=True)
class CheckpointVerification:
    """The checkpoint part of a verification: every checkpoint, checked against the log."""

    checked: int
    problems: tuple[Discrepancy, ...]
    coverage: Coverage
    latest: RecordedCheckpoint | None
    learner_head: ChainHead | None  # the learner's head as of the latest checkpoint, if asked

    @property
    def ok(self) -> bool:
        return self.coverage is Coverage.VERIFIED


async def verify_checkpoints(
    connection: Connection, trusted_public_key: bytes | None, learner_id: str | None = None
) -> CheckpointVerification:
    """Check every stored checkpoint: signature, extension of its predecessor, and that the log
    still holds every head it signed (only ``learner_id``'s, if given) and its latest root.

    Without ``trusted_public_key`` each signature is checked against the key stored beside it,
    which only an honest database vouches for (callers should say so).
    """
    recorded = await recorded_sequence(connection)
    if not recorded:
        return CheckpointVerification(0, (), Coverage.NO_CHECKPOINT, None, None)
    latest = recorded[-1]
    key = trusted_public_key if trusted_public_key is not None else latest.signed.public_key
    check: SequenceCheck = check_sequence(recorded, key)
    problems = list(check.problems)
    wanted = [
        (number, head)
        for number, head in check.signed_heads
        if learner_id is None or head.learner_id == learner_id
    ]
    hashes = await stored_hashes(connection, ((h.learner_id, h.sequence) for _, h in wanted))
    for number, head in wanted:
        stored = hashes.get((head.learner_id, head.sequence))
        if stored != head.entry_hash:
            what = "is gone" if stored is None else "has been replaced"
            problems.append(
                Discrepancy(
                    f"entry {head.sequence}, which it signed as the learner's head, {what}: "
                    "history was rewritten",
                    head.learner_id,
                    number,
                )
            )
    cp = latest.signed.checkpoint
    log_heads, position = await heads_below(connection, cp.tx_horizon)
    if heads_root(log_heads) != cp.root_hash or position != cp.position:
        problems.append(
            Discrepancy(
                f"the log up to position {cp.position} no longer matches the checkpoint signed "
                f"at {cp.signed_at.isoformat()}: history was rewritten",
                None,
                latest.number,
            )
        )
    covered = (
        check.heads
        if cp.records_heads
        else {h.learner_id: h for h in log_heads}  # version 1: covered by its root alone
    )
    learner_head = None if learner_id is None else covered.get(learner_id)
    coverage = coverage_of(
        check.checked, problems, covers_subject=learner_id is None or learner_head is not None
    )
    return CheckpointVerification(check.checked, tuple(problems), coverage, latest, learner_head)
