"""Signed checkpoints in PostgreSQL: what they cover, storing them, reading the latest."""

from __future__ import annotations

import asyncpg

from learnerledger.domain.checkpoints import Checkpoint, SignedCheckpoint
from learnerledger.domain.hash_chain import ChainHead
from learnerledger.postgres import Connection


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


async def store_checkpoint(connection: Connection, signed: SignedCheckpoint) -> None:
    cp = signed.checkpoint
    await connection.execute(
        """INSERT INTO checkpoints (position, tx_horizon, root_hash, learner_count, signed_at,
                                    signature, public_key, statement)
           VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7, $8)""",
        cp.position,
        str(cp.tx_horizon),
        cp.root_hash,
        cp.learner_count,
        cp.signed_at,
        signed.signature,
        signed.public_key,
        cp.statement(),
    )


async def latest_checkpoint(connection: Connection) -> SignedCheckpoint | None:
    row: asyncpg.Record | None = await connection.fetchrow(
        """SELECT position, tx_horizon::text::bigint AS horizon, root_hash, learner_count,
                  signed_at, signature, public_key
             FROM checkpoints ORDER BY checkpoint_id DESC LIMIT 1"""
    )
    if row is None:
        return None
    return SignedCheckpoint(
        Checkpoint(
            row["position"],
            row["horizon"],
            bytes(row["root_hash"]),
            row["learner_count"],
            row["signed_at"],
        ),
        bytes(row["signature"]),
        bytes(row["public_key"]),
    )
