"""The checkpointer's tree step: grow the Merkle tree from the log, prove it extends the last
signed tree head, and sign a new C2SP tlog-checkpoint; then append the signed heads
not yet published to the topic ``ledger.checkpoints.v1`` (``publish_tree_heads``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from learnerledger.domain import merkle
from learnerledger.domain.checkpoints import Discrepancy
from learnerledger.domain.proofs import ConsistencyProof
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

#: The record header that carries the consistency proof from the previously published head
#: (``learnerledger/consistency-proof/v1`` JSON); absent on the first head.
CONSISTENCY_HEADER = "consistency-proof"
PUBLISH_TIMEOUT_S = 30.0


class _Producer(Protocol):
    async def send_and_wait(
        self,
        topic: str,
        *,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any: ...


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


async def publish_tree_heads(connection: Connection, producer: _Producer, topic: str) -> int:
    """Append the signed tree heads not yet on ``topic`` to it, in order of tree size; how many.

    The record's value is the note exactly as signed (any tlog-checkpoint reader reads it);
    header ``consistency-proof`` holds the proof from the head published before it, so a
    witness that follows the topic needs nothing else. A head is recorded as published only
    after the broker's acknowledgement (acks=all), under the checkpointer's lock, so heads
    reach the topic in order; a crash in between publishes that head again (the same note
    twice in a row). Raises ``CheckpointerBusy`` while another checkpointer holds the lock.
    """
    if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", CHECKPOINTER_LOCK):
        raise CheckpointerBusy
    try:
        published = await connection.fetchval(
            "SELECT max(tree_size) FROM tree_head_publications WHERE topic = $1", topic
        )
        rows = await connection.fetch(
            """SELECT tree_size, root_hash, note FROM tree_heads WHERE tree_size > $1
                ORDER BY tree_size""",
            published or 0,
        )
        previous = None if published is None else int(published)
        for row in rows:
            size = int(row["tree_size"])
            headers: list[tuple[str, bytes]] = []
            if previous is not None:
                proof = await consistency_proof_between(connection, previous, size)
                document = ConsistencyProof(previous, size, tuple(proof)).to_json()
                headers.append((CONSISTENCY_HEADER, document.encode("utf-8")))
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):  # Kafka unreachable: retry later
                metadata = await producer.send_and_wait(
                    topic, value=str(row["note"]).encode("utf-8"), headers=headers
                )
            await connection.execute(
                """INSERT INTO tree_head_publications (topic, tree_size, kafka_offset)
                   VALUES ($1, $2, $3)""",
                topic,
                size,
                int(metadata.offset),
            )
            previous = size
        return len(rows)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", CHECKPOINTER_LOCK)
