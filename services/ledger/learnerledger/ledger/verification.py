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
from learnerledger.domain.hash_chain import ChainBreak, heads_root, verify_chain
from learnerledger.postgres import Connection
from learnerledger.postgres.checkpoints import (
    finished_horizon,
    heads_below,
    latest_checkpoint,
    store_checkpoint,
)
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


async def take_checkpoint(connection: Connection, key: Ed25519PrivateKey) -> SignedCheckpoint:
    """Sign the head of every transaction that has finished, and store the statement."""
    async with connection.transaction(isolation="repeatable_read"):
        horizon = await finished_horizon(connection)
        heads, position = await heads_below(connection, horizon)
    signed = sign_checkpoint(
        Checkpoint(position, horizon, heads_root(heads), len(heads), datetime.now(UTC)), key
    )
    await store_checkpoint(connection, signed)
    return signed


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
    heads, position = await heads_below(connection, signed.checkpoint.tx_horizon)
    if heads_root(heads) != signed.checkpoint.root_hash or position != signed.checkpoint.position:
        return 1, (
            f"the log up to position {signed.checkpoint.position} no longer matches the "
            f"checkpoint signed at {signed.checkpoint.signed_at.isoformat()}: history was rewritten"
        )
    return 1, None
