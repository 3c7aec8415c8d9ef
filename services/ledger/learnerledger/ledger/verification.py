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
    Coverage,
    Discrepancy,
    LearnerExtension,
    PreviousCheckpoint,
    RecordedCheckpoint,
    SignedCheckpoint,
    diff_heads,
    next_checkpoint,
    plan_extension,
    sign_checkpoint,
    signature_is_valid,
)
from learnerledger.domain.entries import Entry
from learnerledger.domain.hash_chain import (
    ChainBreak,
    ChainHead,
    extend_chain,
    heads_root,
    verify_chain,
)
from learnerledger.domain.signed_note import NoteError, NoteVerifier
from learnerledger.domain.tlog_checkpoint import open_checkpoint, parse_checkpoint_body
from learnerledger.postgres import Connection
from learnerledger.postgres.checkpoints import (
    entries_between,
    finished_horizon,
    heads_below,
    latest_recorded,
    recorded_heads_through,
    signed_heads_of_new_learners,
    store_checkpoint,
    verify_checkpoints,
)
from learnerledger.postgres.credit_log import entry_from_row
from learnerledger.postgres.merkle_tree import LeavesMissing, root_over_log
from learnerledger.postgres.tree_heads import latest_tree_head

# Session-level advisory lock: one checkpointer at a time signs (several ledger pods may run).
CHECKPOINTER_LOCK = 0x4C4C_4350  # "LLCP"

_ENTRY_QUERY = (
    "SELECT position, learner_id, sequence, kind, payload, canonical_json, rules_version, "
    "source_event_id, source_partition, source_offset, prev_hash, entry_hash, recorded_at "
    "FROM credit_log WHERE ($1::text IS NULL OR learner_id = $1) ORDER BY learner_id, sequence"
)


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What ``verify_ledger`` found.

    ``ok``: nothing is broken. ``protected``: nothing is broken *and* signed checkpoints cover
    what was checked (``coverage`` is VERIFIED); with no checkpoint, or none covering the
    learner, the chains alone prove nothing against a consistent rewrite.
    """

    learners_checked: int
    entries_checked: int
    first_break: ChainBreak | None
    checkpoints_checked: int
    checkpoint_problems: tuple[Discrepancy, ...] = ()
    coverage: Coverage = Coverage.NO_CHECKPOINT
    latest_checkpoint: SignedCheckpoint | None = None
    latest_checkpoint_number: int = 0
    #: The Merkle tree check (whole-log verifies only): the size of the latest signed tree
    #: head whose root was recomputed over the log (0: no head yet, or not checked).
    tree_checked: bool = False
    tree_size: int = 0
    tree_ok: bool = True  # its problems, if any, are among ``checkpoint_problems``

    @property
    def ok(self) -> bool:
        return self.first_break is None and not self.checkpoint_problems

    @property
    def protected(self) -> bool:
        return self.ok and self.coverage is Coverage.VERIFIED


class CheckpointRefused(Exception):
    """The checkpointer will not sign: the log is not the previous checkpoint extended."""

    def __init__(self, discrepancies: tuple[Discrepancy, ...]) -> None:
        self.discrepancies = discrepancies
        super().__init__("; ".join(d.describe() for d in discrepancies))

    @property
    def learner_ids(self) -> list[str]:
        return sorted({d.learner_id for d in self.discrepancies if d.learner_id is not None})


class CheckpointerBusy(Exception):
    """Another checkpointer holds the lock; this tick signs nothing."""


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


async def take_checkpoint(
    connection: Connection,
    key: Ed25519PrivateKey,
    *,
    last_signed: RecordedCheckpoint | None = None,
) -> RecordedCheckpoint:
    """One checkpointer tick: extend the previous checkpoint by the entries added since, check
    that the log's heads are exactly the recomputed ones, sign and store.

    Raises ``CheckpointRefused`` (nothing is signed) when the log is not the previous
    checkpoint's state extended: a rewritten history stays refused on every later tick, since
    the previous checkpoint stays the same. ``last_signed`` is what this process signed last:
    if the newest stored checkpoint is another one, checkpoints were removed or replaced.
    Raises ``CheckpointerBusy`` while another checkpointer holds the lock.
    """
    if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", CHECKPOINTER_LOCK):
        raise CheckpointerBusy
    try:
        async with connection.transaction(isolation="repeatable_read"):
            previous, horizon, changed, heads, position = await _extend_previous(
                connection, public_key_of(key), last_signed
            )
        checkpoint = next_checkpoint(
            None if previous is None else previous.signed.checkpoint,
            position=position,
            tx_horizon=horizon,
            heads=heads,
            changed=changed,
            signed_at=datetime.now(UTC),
        )
        signed = sign_checkpoint(checkpoint, key)
        number = await store_checkpoint(connection, signed, changed)
        return RecordedCheckpoint(number, signed, tuple(changed))
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", CHECKPOINTER_LOCK)


async def _extend_previous(
    connection: Connection, public_key: bytes, last_signed: RecordedCheckpoint | None
) -> tuple[RecordedCheckpoint | None, int, list[ChainHead], list[ChainHead], int]:
    def refuse(reason: str) -> CheckpointRefused:
        return CheckpointRefused((Discrepancy(reason),))

    horizon = await finished_horizon(connection)
    previous = await latest_recorded(connection)
    if last_signed is not None and (
        previous is None
        or previous.number != last_signed.number
        or previous.signed != last_signed.signed
    ):
        raise refuse(
            f"the newest stored checkpoint is not #{last_signed.number}, the one this "
            "checkpointer signed last: checkpoints were removed or replaced"
        )
    base: PreviousCheckpoint | None = None
    from_horizon = 0
    if previous is not None:
        if not signature_is_valid(previous.signed, public_key):
            raise refuse(f"checkpoint #{previous.number} was not signed by this checkpointer's key")
        # (xmin never goes back on one primary; after a failover, keep the signed horizon)
        horizon = max(horizon, previous.signed.checkpoint.tx_horizon)
        if previous.signed.checkpoint.records_heads:
            base = PreviousCheckpoint(previous.number, previous.signed.checkpoint)
            from_horizon = previous.signed.checkpoint.tx_horizon
        else:  # version 1: it must still match the log; the first version 2 starts at genesis
            old = previous.signed.checkpoint
            old_heads, old_position = await heads_below(connection, old.tx_horizon)
            if heads_root(old_heads) != old.root_hash or old_position != old.position:
                raise refuse(
                    f"the log no longer matches checkpoint #{previous.number}: "
                    "history was rewritten"
                )
    signed_now = (
        await signed_heads_of_new_learners(connection, base.number, from_horizon, horizon)
        if base is not None
        else {}
    )
    extensions: list[LearnerExtension] = []
    group: list[Entry] = []

    def close_group() -> None:
        learner = group[0].learner_id
        now = signed_now.get(learner)
        signed_head = None if now is None else now.signed_head
        extensions.append(
            LearnerExtension(
                learner,
                signed_head,
                None if now is None else now.stored_hash,
                extend_chain(signed_head, group),
            )
        )
        group.clear()

    async for entry in entries_between(connection, from_horizon, horizon):
        if group and group[0].learner_id != entry.learner_id:
            close_group()
        group.append(entry)
    if group:
        close_group()
    heads, position = await heads_below(connection, horizon)
    plan = plan_extension(base, extensions, heads)
    if not plan.may_sign:
        problems = list(plan.discrepancies)
        if base is not None and not plan.unchanged_root_matches:
            problems += await _name_rewritten_learners(connection, base, extensions, heads)
        raise CheckpointRefused(tuple(problems))
    return previous, horizon, list(plan.changed), heads, position


async def _name_rewritten_learners(
    connection: Connection,
    base: PreviousCheckpoint,
    extensions: list[LearnerExtension],
    heads: list[ChainHead],
) -> list[Discrepancy]:
    """After a root mismatch: which learners without new entries differ from their signed heads.

    Reads every recorded head (the slow path, only when refusing) and trusts them only if they
    hash to the previous checkpoint's signed root.
    """
    signed = await recorded_heads_through(connection, base.number)
    if heads_root(list(signed.values())) != base.checkpoint.root_hash:
        return [
            Discrepancy(
                f"the heads recorded for checkpoint #{base.number} do not hash to its signed "
                "root: the checkpoint records were changed"
            )
        ]
    touched = {ext.learner_id for ext in extensions}
    stored = {h.learner_id: h for h in heads if h.learner_id not in touched}
    untouched_signed = {k: v for k, v in signed.items() if k not in touched}
    return diff_heads(untouched_signed, stored, stored.keys() | untouched_signed.keys())


async def verify_ledger(
    connection: Connection,
    *,
    learner_id: str | None = None,
    trusted_public_key: bytes | None = None,
) -> VerificationReport:
    """Recompute every chain (or one learner's) and check every signed checkpoint.

    Each checkpoint is checked against ``trusted_public_key`` (from settings, never from the
    database an insider could edit) and against its predecessor, and the log must still hold
    every head they signed (``postgres.checkpoints.verify_checkpoints``); without a key, the
    signatures are checked against the key stored beside the latest and the caller says so.
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
        checkpoints = await verify_checkpoints(connection, trusted_public_key, learner_id)
        tree_size = 0
        tree_problems: tuple[Discrepancy, ...] = ()
        if learner_id is None:
            tree_size, tree_problems = await verify_tree(connection, trusted_public_key)
    return VerificationReport(
        learners,
        entries,
        first_break,
        checkpoints.checked,
        checkpoints.problems + tree_problems,
        checkpoints.coverage,
        None if checkpoints.latest is None else checkpoints.latest.signed,
        0 if checkpoints.latest is None else checkpoints.latest.number,
        tree_checked=learner_id is None,
        tree_size=tree_size,
        tree_ok=not tree_problems,
    )


async def verify_tree(
    connection: Connection, trusted_public_key: bytes | None
) -> tuple[int, tuple[Discrepancy, ...]]:
    """Check the latest signed tree head against the log: its note is a checkpoint signed by
    ``trusted_public_key`` (when given) stating the row's size and root, and the Merkle root
    recomputed over the log's first ``tree_size`` entries (in leaf order, from their stored
    ``entry_hash``) is that root. Returns the head's size (0: none yet) and the problems."""
    head = await latest_tree_head(connection)
    if head is None:
        return 0, ()
    problems: list[Discrepancy] = []
    try:
        body = parse_checkpoint_body(head.note.split("\n\n", 1)[0] + "\n")
        if trusted_public_key is not None:
            verifier = NoteVerifier.for_key(body.origin, trusted_public_key)
            body = open_checkpoint(head.note, verifier, origin=body.origin)
    except NoteError as exc:
        problems.append(
            Discrepancy(
                f"Merkle tree: the tree head of size {head.tree_size} does not verify: {exc}"
            )
        )
        return head.tree_size, tuple(problems)
    if (body.size, body.root_hash) != (head.tree_size, head.root_hash):
        problems.append(
            Discrepancy(
                f"Merkle tree: the tree head row of size {head.tree_size} differs from its note"
            )
        )
    try:
        root = await root_over_log(connection, body.size)
    except LeavesMissing as exc:
        problems.append(Discrepancy(f"Merkle tree: {exc}"))
        return head.tree_size, tuple(problems)
    if root != body.root_hash:
        problems.append(
            Discrepancy(
                f"Merkle tree: the root recomputed over the log's first {body.size} entries is "
                f"{root.hex()}, not the signed root {body.root_hash.hex()}: entries or their "
                "order in the tree changed after the head was signed"
            )
        )
    return head.tree_size, tuple(problems)
