"""The checkpointer's tree step: grow the Merkle tree from the log, prove it extends the last
signed tree head, and sign a new C2SP tlog-checkpoint (issue 15)."""

from __future__ import annotations

from dataclasses import dataclass

from learnerledger.domain import merkle
from learnerledger.domain.checkpoints import Discrepancy
from learnerledger.domain.signed_note import NoteError, NoteSigner
from learnerledger.domain.tlog_checkpoint import TreeCheckpoint, open_checkpoint, sign_checkpoint
from learnerledger.ledger.verification import CHECKPOINTER_LOCK, CheckpointerBusy, CheckpointRefused
from learnerledger.postgres import Connection
from learnerledger.postgres.merkle_tree import (
    EdgeConflict,
    MissingNode,
    consistency_proof_between,
    grow_from_log,
)
from learnerledger.postgres.tree_heads import StoredTreeHead, latest_tree_head, store_tree_head


@dataclass(frozen=True, slots=True)
class TreeHeadResult:
    """What a tree step did: the tree's size now, and the head it signed (None: no new leaf)."""

    tree_size: int
    signed: StoredTreeHead | None


def _refuse(reason: str) -> CheckpointRefused:
    return CheckpointRefused((Discrepancy(reason),))


async def take_tree_head(connection: Connection, signer: NoteSigner) -> TreeHeadResult:
    """Grow the tree by the log's committed new entries and sign a tree head over it.

    Signs only after checking that the previous signed head verifies with ``signer``'s key and
    that a consistency proof folded from the stored nodes takes its root to the new one;
    raises ``CheckpointRefused`` otherwise (nothing is signed, the tree's growth is kept only
    if it is consistent). Raises ``CheckpointerBusy`` while another checkpointer holds the
    lock (session advisory locks nest, so a caller may hold it already).
    """
    if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", CHECKPOINTER_LOCK):
        raise CheckpointerBusy
    try:
        async with connection.transaction():
            try:
                edge = await grow_from_log(connection)
            except EdgeConflict as exc:
                raise _refuse(f"the stored tree is not consistent with itself: {exc}") from exc
            previous = await latest_tree_head(connection)
            if previous is not None:
                await _check_extends(connection, previous, signer, edge.size, edge.root())
            if edge.size == 0 or (previous is not None and previous.tree_size == edge.size):
                return TreeHeadResult(edge.size, None)
            root = edge.root()
            note = sign_checkpoint(TreeCheckpoint(signer.name, edge.size, root), signer)
            head = StoredTreeHead(edge.size, root, note)
            await store_tree_head(connection, head)
            return TreeHeadResult(edge.size, head)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", CHECKPOINTER_LOCK)


async def _check_extends(
    connection: Connection, previous: StoredTreeHead, signer: NoteSigner, size: int, root: bytes
) -> None:
    try:
        signed = open_checkpoint(previous.note, signer.verifier, origin=signer.name)
    except NoteError as exc:
        raise _refuse(
            f"the latest tree head (size {previous.tree_size}) is not a checkpoint of "
            f"{signer.name!r} signed by this checkpointer's key: {exc}"
        ) from exc
    if (signed.size, signed.root_hash) != (previous.tree_size, previous.root_hash):
        raise _refuse(f"the tree head row of size {previous.tree_size} differs from its note")
    if size < signed.size:
        raise _refuse(
            f"the tree has {size} leaves, fewer than the {signed.size} of the last signed head: "
            "tree rows were removed"
        )
    try:
        proof = await consistency_proof_between(connection, signed.size, size)
        merkle.verify_consistency(signed.size, size, proof, signed.root_hash, root)
    except (MissingNode, merkle.ProofError) as exc:
        raise _refuse(
            f"the tree of {size} leaves does not extend the signed tree head of size "
            f"{signed.size}: history was rewritten ({exc})"
        ) from exc
