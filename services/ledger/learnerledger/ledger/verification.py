"""Verify the credit log: every learner's chain, and the signed checkpoints of the log head."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from learnerledger.domain.checkpoints import (
    Checkpoint,
    SignedCheckpoint,
    sign_checkpoint,
    signature_is_valid,
)
from learnerledger.domain.entries import Entry
from learnerledger.domain.hash_chain import ChainBreak, ChainHead, heads_root, verify_chain
from learnerledger.postgres import Connection
from learnerledger.postgres.credit_log import entry_from_row

_ENTRY_QUERY = (
    "SELECT position, learner_id, sequence, kind, payload, canonical_json, rules_version, "
    "source_event_id, source_partition, source_offset, prev_hash, entry_hash, recorded_at "
    "FROM credit_log WHERE ($1::text IS NULL OR learner_id = $1) ORDER BY learner_id, sequence"
)


@dataclass(frozen=True, slots=True)
class VerificationReport:
    learners_checked: int
    entries_checked: int
    first_break: ChainBreak | None
    checkpoints_checked: int
    checkpoint_problem: str | None

    @property
    def ok(self) -> bool:
        return self.first_break is None and self.checkpoint_problem is None


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a file holding its 32-byte seed as hex."""
    seed = bytes.fromhex(path.read_text().strip())
    return Ed25519PrivateKey.from_private_bytes(seed)


def generate_signing_key(path: Path) -> bytes:
    """Write a new key's seed (hex, mode 0600) to ``path``; return the raw public key."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(seed.hex() + "\n")
    return public_key_of(key)


def public_key_of(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


async def _heads_below(connection: Connection, horizon: int) -> tuple[list[ChainHead], int]:
    rows = await connection.fetch(
        """SELECT DISTINCT ON (learner_id) learner_id, sequence, entry_hash, position
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


async def take_checkpoint(connection: Connection, key: Ed25519PrivateKey) -> SignedCheckpoint:
    """Sign the head of every transaction that has finished, and store the statement."""
    async with connection.transaction(isolation="repeatable_read"):
        horizon = int(
            await connection.fetchval(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            )
        )
        heads, position = await _heads_below(connection, horizon)
    signed = sign_checkpoint(
        Checkpoint(position, horizon, heads_root(heads), len(heads), datetime.now(UTC)), key
    )
    await connection.execute(
        """INSERT INTO checkpoints (position, tx_horizon, root_hash, learner_count, signed_at,
                                    signature, public_key, statement)
           VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7, $8)""",
        signed.checkpoint.position,
        str(horizon),
        signed.checkpoint.root_hash,
        signed.checkpoint.learner_count,
        signed.checkpoint.signed_at,
        signed.signature,
        signed.public_key,
        signed.checkpoint.statement(),
    )
    return signed


async def latest_checkpoint(connection: Connection) -> SignedCheckpoint | None:
    row = await connection.fetchrow(
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


async def verify_ledger(
    connection: Connection,
    *,
    learner_id: str | None = None,
    trusted_public_key: bytes | None = None,
) -> VerificationReport:
    """Recompute every chain (or one learner's) and check the latest signed checkpoint.

    A checkpoint is checked against ``trusted_public_key`` (from settings, never from the
    database an insider could edit); without one, the signature is checked against the key
    stored beside it and the report says so.
    """
    learners = entries = 0
    first_break: ChainBreak | None = None
    current: list[Entry] = []
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        async for row in connection.cursor(_ENTRY_QUERY, learner_id, prefetch=5000):
            entry = entry_from_row(row)
            entries += 1
            if current and current[0].learner_id != entry.learner_id:
                learners += 1
                first_break = first_break or verify_chain(current)
                current = []
            current.append(entry)
        if current:
            learners += 1
            first_break = first_break or verify_chain(current)
        checkpoints, problem = 0, None
        if learner_id is None:
            checkpoints, problem = await _verify_latest_checkpoint(connection, trusted_public_key)
    return VerificationReport(learners, entries, first_break, checkpoints, problem)


async def _verify_latest_checkpoint(
    connection: Connection, trusted_public_key: bytes | None
) -> tuple[int, str | None]:
    signed = await latest_checkpoint(connection)
    if signed is None:
        return 0, None
    key = trusted_public_key if trusted_public_key is not None else signed.public_key
    if not signature_is_valid(signed, key):
        return 1, "the latest checkpoint's signature does not verify with the trusted key"
    heads, position = await _heads_below(connection, signed.checkpoint.tx_horizon)
    if heads_root(heads) != signed.checkpoint.root_hash or position != signed.checkpoint.position:
        return 1, (
            f"the log up to position {signed.checkpoint.position} no longer matches the "
            f"checkpoint signed at {signed.checkpoint.signed_at.isoformat()}: history was rewritten"
        )
    return 1, None
