"""The incremental Merkle tree's right edge in PostgreSQL (``merkle_tree_edges``, append-only).

One row per recorded tree size: the roots of the tree's perfect subtrees and the tree's root.
The tree grows from the latest row (``domain.merkle.extend``); nothing is recomputed from the
leaves. Not wired into the ledger yet (issue 15).
"""

from __future__ import annotations

from typing import Any

from learnerledger.domain.merkle import EMPTY_EDGE, TreeEdge
from learnerledger.postgres import Connection


class EdgeConflict(RuntimeError):
    """A tree size is already recorded with another edge: two histories (a fork)."""


def _edge_of(row: Any) -> TreeEdge:
    return TreeEdge(int(row["tree_size"]), tuple(bytes(h) for h in row["subtree_roots"]))


async def record_edge(connection: Connection, edge: TreeEdge) -> bool:
    """Record ``edge``; True if it is new, False if the same edge was already recorded.

    Raises ``EdgeConflict`` if the size is recorded with another edge (rows never change)."""
    inserted = await connection.fetchval(
        """INSERT INTO merkle_tree_edges (tree_size, subtree_roots, root_hash)
           VALUES ($1, $2, $3) ON CONFLICT (tree_size) DO NOTHING RETURNING true""",
        edge.size,
        list(edge.subtree_roots),
        edge.root(),
    )
    if inserted:
        return True
    stored = await edge_at(connection, edge.size)
    if stored != edge:
        raise EdgeConflict(f"tree size {edge.size} is already recorded with another edge")
    return False


async def edge_at(connection: Connection, tree_size: int) -> TreeEdge | None:
    """The edge recorded for ``tree_size`` (``EMPTY_EDGE`` for 0), or None."""
    if tree_size == 0:
        return EMPTY_EDGE
    row = await connection.fetchrow(
        "SELECT tree_size, subtree_roots FROM merkle_tree_edges WHERE tree_size = $1", tree_size
    )
    return None if row is None else _edge_of(row)


async def latest_edge(connection: Connection) -> TreeEdge:
    """The edge of the largest recorded tree (``EMPTY_EDGE`` if none is recorded)."""
    row = await connection.fetchrow(
        """SELECT tree_size, subtree_roots FROM merkle_tree_edges
            ORDER BY tree_size DESC LIMIT 1"""
    )
    return EMPTY_EDGE if row is None else _edge_of(row)
