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
