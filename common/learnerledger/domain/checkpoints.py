"""Signed checkpoints: an Ed25519 signature over a statement of the log head.

A checkpoint states the global position it covers and the root hash over every learner's chain
head at that position. A history rewritten and re-chained consistently still changes the root,
so it no longer matches a checkpoint signed before the rewrite.

Checkpoints form a sequence: each one (statement version 2) names the digest of its
predecessor's statement and the root over the heads that changed since (recorded beside it), so
a verifier can check that every checkpoint extends the one before. The checkpointer never signs
heads it has not recomputed from the previous checkpoint's heads and the entries added since
(``plan_extension``); a rewritten history makes it refuse instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from learnerledger.domain.canonical_json import canonical_json
from learnerledger.domain.hash_chain import ChainBreak, ChainHead, heads_root
from learnerledger.domain.instants import format_instant

STATEMENT_VERSION = 2


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A statement of the log head.

    ``tx_horizon`` fixes which rows it covers: every row written by a transaction older than it
    (all of those had finished when the checkpoint was taken, so the set can never change).
    ``position`` is the highest position among them, ``root_hash`` the root over every learner's
    chain head within them (``hash_chain.heads_root``).

    Version 2 adds ``previous`` (SHA-256 of the predecessor's statement; ``None`` for the first
    checkpoint) and ``changed_root``/``changed_count``: the root (``heads_root``) over the heads
    that changed since the predecessor, which are stored beside the checkpoint. A version-1
    checkpoint (``changed_root is None``) was signed before checkpoints recorded their heads.
    """

    position: int
    tx_horizon: int
    root_hash: bytes
    learner_count: int
    signed_at: datetime
    previous: bytes | None = None
    changed_root: bytes | None = None
    changed_count: int = 0

    @property
    def records_heads(self) -> bool:
        """True for version 2: the heads it changed are recorded and bound by ``changed_root``."""
        return self.changed_root is not None

    def statement(self) -> bytes:
        """The bytes that are signed (RFC 8785 JSON)."""
        fields: dict[str, object] = {
            "position": self.position,
            "tx_horizon": self.tx_horizon,
            "root_hash": self.root_hash.hex(),
            "learner_count": self.learner_count,
            "signed_at": format_instant(self.signed_at),
        }
        if self.changed_root is not None:
            fields |= {
                "version": STATEMENT_VERSION,
                "previous": None if self.previous is None else self.previous.hex(),
                "changed_root": self.changed_root.hex(),
                "changed_count": self.changed_count,
            }
        return canonical_json(fields)

    def digest(self) -> bytes:
        """SHA-256 of the statement: what the next checkpoint names as ``previous``."""
        return hashlib.sha256(self.statement()).digest()


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


# --------------------------------------------------------------------------------------------
# Extending the previous checkpoint (the checkpointer, before it signs)


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """Why a state cannot be signed or a checkpoint does not verify (``learner_id`` if one)."""

    reason: str
    learner_id: str | None = None
    checkpoint_number: int | None = None

    def describe(self) -> str:
        where = []
        if self.checkpoint_number is not None:
            where.append(f"checkpoint #{self.checkpoint_number}")
        if self.learner_id is not None:
            where.append(f"learner {self.learner_id}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


@dataclass(frozen=True, slots=True)
class PreviousCheckpoint:
    """What the next checkpoint extends: a verified predecessor that records its heads."""

    number: int
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class LearnerExtension:
    """One learner with entries since the previous checkpoint.

    ``signed_head`` is the learner's head as of the previous checkpoint (``None`` if the learner
    is new since), ``stored_at_signed`` the hash the log holds today at that head's sequence
    (``None`` if the row is gone), ``result`` what ``hash_chain.extend_chain`` recomputed from
    the new entries.
    """

    learner_id: str
    signed_head: ChainHead | None
    stored_at_signed: bytes | None
    result: ChainHead | ChainBreak | None


@dataclass(frozen=True, slots=True)
class ExtensionPlan:
    """The outcome of ``plan_extension``: the heads to sign, or why not."""

    discrepancies: tuple[Discrepancy, ...]
    changed: tuple[ChainHead, ...] = ()
    unchanged_root_matches: bool = True

    @property
    def may_sign(self) -> bool:
        return not self.discrepancies


def plan_extension(
    previous: PreviousCheckpoint | None,
    extensions: Iterable[LearnerExtension],
    stored_heads: Sequence[ChainHead],
) -> ExtensionPlan:
    """Check that the log's heads are the previous checkpoint's heads extended by the new entries.

    ``stored_heads`` are every learner's head in the log below the new horizon (what would be
    signed). Learners with new entries must continue their signed head (which must still be in
    the log, unchanged) and their stored head must be the one recomputed from the entries.
    Every other learner's stored head must be its signed head: the previous root is recomputed
    over those heads and the signed heads of the learners with new entries, so this costs one
    pass over the heads and no read of older entries. ``previous=None`` means no predecessor
    records heads: then every entry is new and ``extensions`` start at the genesis.
    """
    problems: list[Discrepancy] = []
    changed: list[ChainHead] = []
    stored = {head.learner_id: head for head in stored_heads}
    signed_heads_of_touched: list[ChainHead] = []
    touched: set[str] = set()
    for ext in extensions:
        touched.add(ext.learner_id)
        if ext.signed_head is not None:
            signed_heads_of_touched.append(ext.signed_head)
            if ext.stored_at_signed != ext.signed_head.entry_hash:
                what = "is gone" if ext.stored_at_signed is None else "has changed"
                problems.append(
                    Discrepancy(
                        f"entry {ext.signed_head.sequence}, the learner's head at the previous "
                        f"checkpoint, {what}: history was rewritten",
                        ext.learner_id,
                    )
                )
                continue
        if isinstance(ext.result, ChainBreak):
            problems.append(
                Discrepancy(
                    f"entry {ext.result.sequence} does not continue the signed chain: "
                    f"{ext.result.reason}",
                    ext.learner_id,
                )
            )
            continue
        if ext.result is None:
            continue
        if stored.get(ext.learner_id) != ext.result:
            problems.append(
                Discrepancy(
                    "the head in the log is not the head recomputed from the entries",
                    ext.learner_id,
                )
            )
            continue
        if ext.result != ext.signed_head:
            changed.append(ext.result)
    unchanged = [head for learner, head in stored.items() if learner not in touched]
    root_matches = True
    if previous is not None:
        before = unchanged + signed_heads_of_touched
        cp = previous.checkpoint
        root_matches = heads_root(before) == cp.root_hash and len(before) == cp.learner_count
        if not root_matches:
            problems.append(
                Discrepancy(
                    f"the heads of learners without new entries no longer hash to the root of "
                    f"checkpoint #{previous.number}: history was rewritten",
                )
            )
    elif stored.keys() - touched:
        for learner in sorted(stored.keys() - touched):
            problems.append(Discrepancy("a head in the log has no recomputed entries", learner))
    return ExtensionPlan(tuple(problems), tuple(changed), root_matches)


def diff_heads(
    signed: Mapping[str, ChainHead], stored: Mapping[str, ChainHead], learners: Iterable[str]
) -> list[Discrepancy]:
    """Name the learners (of ``learners``) whose stored head is not their signed head."""
    problems = []
    for learner in sorted(set(learners)):
        was, now = signed.get(learner), stored.get(learner)
        if was == now:
            continue
        if was is None:
            reason = "has entries older than the previous checkpoint that it did not cover"
        elif now is None:
            reason = f"its signed head (entry {was.sequence}) is gone: history was rewritten"
        else:
            reason = (
                f"its head at entry {now.sequence} is not the signed head at entry "
                f"{was.sequence}: history was rewritten"
            )
        problems.append(Discrepancy(reason, learner))
    return problems


def next_checkpoint(
    previous: Checkpoint | None,
    *,
    position: int,
    tx_horizon: int,
    heads: Sequence[ChainHead],
    changed: Sequence[ChainHead],
    signed_at: datetime,
) -> Checkpoint:
    """The statement that extends ``previous`` by the ``changed`` heads (version 2)."""
    return Checkpoint(
        position=position,
        tx_horizon=tx_horizon,
        root_hash=heads_root(heads),
        learner_count=len(heads),
        signed_at=signed_at,
        previous=None if previous is None else previous.digest(),
        changed_root=heads_root(changed),
        changed_count=len(changed),
    )


# --------------------------------------------------------------------------------------------
# Verifying the whole sequence (verify, VerifyLedger, VerifyEntry)


class Coverage(StrEnum):
    """What the signed checkpoints say about the log (or one learner)."""

    VERIFIED = "verified"  # checkpoints exist, every one verifies and the subject is covered
    NO_CHECKPOINT = "no_checkpoint"  # nothing has been signed yet
    NOT_COVERED = "not_covered"  # the learner has no head in any verified checkpoint
    BROKEN = "broken"  # a checkpoint does not verify or does not extend its predecessor


@dataclass(frozen=True, slots=True)
class RecordedCheckpoint:
    """A stored checkpoint: its number (``checkpoint_id``) and, for version 2, its changed heads."""

    number: int
    signed: SignedCheckpoint
    changed_heads: tuple[ChainHead, ...] = ()


@dataclass(slots=True)
class SequenceCheck:
    """The result of ``check_sequence``.

    ``heads`` are the signed heads as of the latest checkpoint (only learners covered by version
    2 checkpoints), ``signed_heads`` every (checkpoint, head) pair a verifier should find in the
    log.
    """

    checked: int = 0
    problems: list[Discrepancy] = field(default_factory=list)
    heads: dict[str, ChainHead] = field(default_factory=dict)
    signed_heads: list[tuple[int, ChainHead]] = field(default_factory=list)


def check_sequence(
    recorded: Sequence[RecordedCheckpoint], trusted_public_key: bytes
) -> SequenceCheck:
    """Check every checkpoint in order: its signature, and that it extends its predecessor.

    Extends means: version 2 names its predecessor's statement digest, its horizon and position
    do not go back, its recorded changed heads hash to its signed ``changed_root``, each moves
    its learner's signed head forward, and the heads so far hash to its ``root_hash`` (checked for
    the latest checkpoint, which binds them all). Whether the log still holds those heads is for
    the caller (``SequenceCheck.signed_heads``).
    """
    result = SequenceCheck()
    before: RecordedCheckpoint | None = None
    for item in recorded:
        result.checked += 1
        cp, number = item.signed.checkpoint, item.number

        def problem(reason: str, learner: str | None = None, n: int = number) -> None:
            result.problems.append(Discrepancy(reason, learner, n))

        if not signature_is_valid(item.signed, trusted_public_key):
            problem("its signature does not verify with the trusted key")
        if before is not None:
            prior = before.signed.checkpoint
            if cp.tx_horizon < prior.tx_horizon or cp.position < prior.position:
                problem(f"it goes back behind checkpoint #{before.number}")
        if not cp.records_heads:
            if before is not None and before.signed.checkpoint.records_heads:
                problem("a version-1 checkpoint after checkpoints that record their heads")
            result.heads.clear()
            before = item
            continue
        expected_previous = None if before is None else before.signed.checkpoint.digest()
        if cp.previous != expected_previous:
            problem(
                "it does not extend its predecessor: it names another previous statement"
                if before is not None
                else "it names a predecessor that is not stored"
            )
        if heads_root(item.changed_heads) != cp.changed_root or (
            len(item.changed_heads) != cp.changed_count
        ):
            problem("its recorded heads do not match its signed statement")
        for head in item.changed_heads:
            was = result.heads.get(head.learner_id)
            if was is not None and head.sequence <= was.sequence:
                problem(f"it moves the head back from entry {was.sequence}", head.learner_id)
            result.heads[head.learner_id] = head
            result.signed_heads.append((number, head))
        before = item
    if before is not None and before.signed.checkpoint.records_heads:
        latest = before.signed.checkpoint
        if (
            heads_root(list(result.heads.values())) != latest.root_hash
            or len(result.heads) != latest.learner_count
        ):
            result.problems.append(
                Discrepancy(
                    "the heads recorded by the checkpoints do not hash to its root",
                    None,
                    before.number,
                )
            )
    return result


def coverage_of(checked: int, problems: Sequence[Discrepancy], *, covers_subject: bool) -> Coverage:
    """The verdict on the checkpoint part (``covers_subject``: the latest checkpoint covers the
    learner asked about; always true for the whole log)."""
    if problems:
        return Coverage.BROKEN
    if checked == 0:
        return Coverage.NO_CHECKPOINT
    if not covers_subject:
        return Coverage.NOT_COVERED
    return Coverage.VERIFIED
