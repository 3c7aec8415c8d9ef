"""Signed tree heads in PostgreSQL (``tree_heads``, migration 0017), append-only.

Each row is a C2SP tlog-checkpoint note, stored verbatim as signed, with its size and root for
lookups. The checkpointer writes them (``ledger.tree_heads``); the query service and
``ledgerctl proof export`` serve them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from learnerledger.postgres import Connection
from learnerledger.postgres.merkle_tree import inclusion_proof_at, leaf_of


@dataclass(frozen=True, slots=True)
class StoredTreeHead:
    tree_size: int
    root_hash: bytes
    note: str


def _head(row: Any) -> StoredTreeHead:
    return StoredTreeHead(int(row["tree_size"]), bytes(row["root_hash"]), str(row["note"]))


async def store_tree_head(connection: Connection, head: StoredTreeHead) -> None:
    await connection.execute(
        "INSERT INTO tree_heads (tree_size, root_hash, note) VALUES ($1, $2, $3)",
        head.tree_size,
        head.root_hash,
        head.note,
    )


async def latest_tree_head(connection: Connection) -> StoredTreeHead | None:
    row = await connection.fetchrow(
        "SELECT tree_size, root_hash, note FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
    )
    return None if row is None else _head(row)


async def tree_head_at(connection: Connection, tree_size: int) -> StoredTreeHead | None:
    row = await connection.fetchrow(
        "SELECT tree_size, root_hash, note FROM tree_heads WHERE tree_size = $1", tree_size
    )
    return None if row is None else _head(row)


class NoTreeHead(LookupError):
    """No signed tree head of the size asked for (or none at all yet)."""


@dataclass(frozen=True, slots=True)
class InclusionAt:
    """An entry's leaf and its inclusion proof under a signed tree head."""

    leaf_index: int
    head: StoredTreeHead
    proof: list[bytes]


@dataclass(frozen=True, slots=True)
class LeafInclusion:
    """A leaf (its hash as stored), a signed tree head over it and its inclusion proof."""

    leaf_index: int
    leaf_hash: bytes
    head: StoredTreeHead
    proof: list[bytes]


async def head_of_size(connection: Connection, tree_size: int) -> StoredTreeHead:
    """The signed head of ``tree_size`` leaves, or the latest for 0 (``NoTreeHead`` if none)."""
    head = (
        await latest_tree_head(connection)
        if tree_size == 0
        else await tree_head_at(connection, tree_size)
    )
    if head is None:
        raise NoTreeHead(
            "no signed tree head yet"
            if tree_size == 0
            else f"no signed tree head of size {tree_size}"
        )
    return head


async def inclusion_at(
    connection: Connection, learner_id: str, sequence: int, tree_size: int = 0
) -> InclusionAt | None:
    """The inclusion proof of a learner's entry under the signed head of ``tree_size`` (0: the
    latest); None while the entry is not in that head's tree. Raises ``NoTreeHead``."""
    head = await head_of_size(connection, tree_size)
    leaf = await leaf_of(connection, learner_id, sequence)
    if leaf is None or leaf.leaf_index >= head.tree_size:
        return None
    proof = await inclusion_proof_at(connection, leaf.leaf_index, head.tree_size)
    return InclusionAt(leaf.leaf_index, head, proof)


async def inclusion_of_leaf(
    connection: Connection, leaf_index: int, tree_size: int = 0
) -> LeafInclusion | None:
    """Leaf ``leaf_index``'s inclusion proof under the signed head of ``tree_size`` (0: the
    latest); None if the leaf is outside that head's tree. Raises ``NoTreeHead``."""
    head = await head_of_size(connection, tree_size)
    if leaf_index >= head.tree_size:
        return None
    leaf = await connection.fetchval(
        "SELECT hash FROM merkle_tree_nodes WHERE level = 0 AND node_index = $1", leaf_index
    )
    if leaf is None:
        return None
    proof = await inclusion_proof_at(connection, leaf_index, head.tree_size)
    return LeafInclusion(leaf_index, bytes(leaf), head, proof)


async def leaf_index_of_entry_hash(connection: Connection, entry_hash: bytes) -> int | None:
    """The leaf index of the entry with ``entry_hash`` (None if no such entry is in the tree)."""
    value = await connection.fetchval(
        """SELECT l.leaf_index FROM credit_log c JOIN merkle_tree_leaves l USING (position)
            WHERE c.entry_hash = $1 ORDER BY l.leaf_index LIMIT 1""",
        entry_hash,
    )
    return None if value is None else int(value)
