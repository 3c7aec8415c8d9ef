"""Signed checkpoints: an Ed25519 signature over a statement of the log head.

A checkpoint states the global position it covers and the root hash over every learner's chain
head at that position. A history rewritten and re-chained consistently still changes the root,
so it no longer matches a checkpoint signed before the rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from learnerledger.domain.canonical_json import canonical_json
from learnerledger.domain.instants import format_instant


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A statement of the log head.

    ``tx_horizon`` fixes which rows it covers: every row written by a transaction older than it
    (all of those had finished when the checkpoint was taken, so the set can never change).
    ``position`` is the highest position among them, ``root_hash`` the root over every learner's
    chain head within them (``hash_chain.heads_root``).
    """

    position: int
    tx_horizon: int
    root_hash: bytes
    learner_count: int
    signed_at: datetime

    def statement(self) -> bytes:
        """The bytes that are signed (RFC 8785 JSON)."""
        return canonical_json(
            {
                "position": self.position,
                "tx_horizon": self.tx_horizon,
                "root_hash": self.root_hash.hex(),
                "learner_count": self.learner_count,
                "signed_at": format_instant(self.signed_at),
            }
        )


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    signature: bytes
    public_key: bytes  # raw 32-byte Ed25519 public key

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)


def key_id(public_key: bytes) -> str:
    """A short, stable name for a public key (first 16 hex digits of its bytes)."""
    return public_key.hex()[:16]


def sign_checkpoint(checkpoint: Checkpoint, private_key: Ed25519PrivateKey) -> SignedCheckpoint:
    public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return SignedCheckpoint(checkpoint, private_key.sign(checkpoint.statement()), public)


def signature_is_valid(signed: SignedCheckpoint, trusted_public_key: bytes) -> bool:
    """True when ``signed`` was signed by the holder of ``trusted_public_key``."""
    if signed.public_key != trusted_public_key:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(trusted_public_key).verify(
            signed.signature, signed.checkpoint.statement()
        )
    except InvalidSignature:
        return False
    return True
