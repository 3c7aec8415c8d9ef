"""Signed tree heads in PostgreSQL (``tree_heads``, migration 0017), append-only.

Each row is a C2SP tlog-checkpoint note, stored verbatim as signed, with its size and root for
lookups. The checkpointer writes them (``ledger.tree_heads``); the query service and
``ledgerctl proof export`` serve them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from learnerledger.postgres import Connection
from learnerledger.postgres.merkle_tree import (
    inclusion_proof_at,
    leaf_and_inclusion_proof,
)


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
        raise NoTreeHead(_no_head(tree_size))
    return head


def _no_head(tree_size: int) -> str:
    return (
        "no signed tree head yet" if tree_size == 0 else f"no signed tree head of size {tree_size}"
    )


#: The head asked for (``$1`` = 0: the latest) and, in the same round trip, the leaf the caller
#: looks for (``{leaf}``: a scalar subquery over ``$2``, ``$3``), so a proof takes two queries:
#: this one and the proof's nodes (with the leaf's own hash).
_HEAD_AND_LEAF = """
    SELECT h.tree_size, h.root_hash, h.note, ({leaf}) AS leaf_index
      FROM tree_heads h
     WHERE h.tree_size = (SELECT CASE WHEN $1::bigint = 0
                                      THEN (SELECT max(tree_size) FROM tree_heads)
                                      ELSE $1::bigint END)"""

_LEAF_OF_ENTRY = """SELECT l.leaf_index FROM credit_log c JOIN merkle_tree_leaves l USING (position)
                     WHERE c.learner_id = $2 AND c.sequence = $3"""
_LEAF_OF_HASH = """SELECT min(l.leaf_index) FROM credit_log c
                     JOIN merkle_tree_leaves l USING (position) WHERE c.entry_hash = $2"""
_HEAD_AND_LEAF_OF_ENTRY = _HEAD_AND_LEAF.format(leaf=_LEAF_OF_ENTRY)
_HEAD_AND_LEAF_OF_HASH = _HEAD_AND_LEAF.format(leaf=_LEAF_OF_HASH)
_HEAD_ONLY = _HEAD_AND_LEAF.format(leaf="NULL::bigint")


async def _head_and_leaf(
    connection: Connection, query: str, tree_size: int, *key: object
) -> tuple[StoredTreeHead, int | None]:
    row = await connection.fetchrow(query, tree_size, *key)
    if row is None:
        raise NoTreeHead(_no_head(tree_size))
    leaf = row["leaf_index"]
    return _head(row), None if leaf is None else int(leaf)


async def inclusion_at(
    connection: Connection, learner_id: str, sequence: int, tree_size: int = 0
) -> InclusionAt | None:
    """The inclusion proof of a learner's entry under the signed head of ``tree_size`` (0: the
    latest); None while the entry is not in that head's tree. Raises ``NoTreeHead``. Two
    queries: the head with the entry's leaf index, then the proof's nodes."""
    head, leaf = await _head_and_leaf(
        connection, _HEAD_AND_LEAF_OF_ENTRY, tree_size, learner_id, sequence
    )
    if leaf is None or leaf >= head.tree_size:
        return None
    proof = await inclusion_proof_at(connection, leaf, head.tree_size)
    return InclusionAt(leaf, head, proof)


async def inclusion_of_leaf(
    connection: Connection, leaf_index: int, tree_size: int = 0
) -> LeafInclusion | None:
    """Leaf ``leaf_index``'s inclusion proof under the signed head of ``tree_size`` (0: the
    latest); None if the leaf is outside that head's tree. Raises ``NoTreeHead``. Two queries:
    the head, then the proof's nodes with the leaf's hash."""
    head, _ = await _head_and_leaf(connection, _HEAD_ONLY, tree_size)
    return await _leaf_inclusion(connection, head, leaf_index)


async def inclusion_of_entry_hash(
    connection: Connection, entry_hash: bytes, tree_size: int = 0
) -> LeafInclusion | None:
    """The inclusion proof of the entry whose ``entry_hash`` is given (as Certificate
    Transparency's get-proof-by-hash) under the signed head of ``tree_size`` (0: the latest);
    None if no such entry is in that head's tree. Raises ``NoTreeHead``. Two queries."""
    head, leaf = await _head_and_leaf(connection, _HEAD_AND_LEAF_OF_HASH, tree_size, entry_hash)
    return None if leaf is None else await _leaf_inclusion(connection, head, leaf)


async def _leaf_inclusion(
    connection: Connection, head: StoredTreeHead, leaf_index: int
) -> LeafInclusion | None:
    if leaf_index >= head.tree_size:
        return None
    leaf, proof = await leaf_and_inclusion_proof(connection, leaf_index, head.tree_size)
    return LeafInclusion(leaf_index, leaf, head, proof)
