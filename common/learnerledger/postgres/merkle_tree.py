"""The incremental Merkle tree in PostgreSQL (append-only), grown by the checkpointer.

``merkle_tree_edges``: one row per recorded tree size, the roots of the tree's perfect subtrees
and the tree's root; the tree grows from the latest row (``domain.merkle.extend``).
``merkle_tree_nodes``: every perfect subtree's hash, from which proofs are folded in O(log n)
reads (``inclusion_proof_at``, ``consistency_proof_between``). ``grow`` writes both in the
caller's transaction. Nothing is recomputed from the leaves. ``merkle_tree_leaves``: which
entry (log position) is which leaf; ``grow_from_log`` appends the log's new entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from learnerledger.domain.merkle import (
    EMPTY_EDGE,
    Node,
    TreeEdge,
    consistency_proof_ranges,
    extend,
    extend_recording,
    inclusion_proof_ranges,
    leaf_hash,
    proof_from_nodes,
    range_nodes,
)
from learnerledger.postgres import Connection
from learnerledger.postgres.credit_log import LogCursor, hashes_committed_after


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


class MissingNode(RuntimeError):
    """A node a proof needs is not stored: the tree was not grown to that size here."""


async def grow(connection: Connection, leaf_hashes: Sequence[bytes]) -> TreeEdge:
    """Append ``leaf_hashes`` to the stored tree: its new nodes and its new edge (run it in the
    transaction that decides the leaves, so the tree and the log move together)."""
    edge, completed = extend_recording(await latest_edge(connection), leaf_hashes)
    await connection.copy_records_to_table(
        "merkle_tree_nodes",
        records=[(level, index, digest) for (level, index), digest in completed],
        columns=("level", "node_index", "hash"),
    )
    await record_edge(connection, edge)
    return edge


async def _nodes(connection: Connection, wanted: set[Node]) -> dict[Node, bytes]:
    rows = await connection.fetch(
        """SELECT n.level, n.node_index, n.hash FROM merkle_tree_nodes n
             JOIN unnest($1::smallint[], $2::bigint[]) AS w (level, node_index)
               ON n.level = w.level AND n.node_index = w.node_index""",
        [level for level, _ in wanted],
        [index for _, index in wanted],
    )
    found = {(r["level"], r["node_index"]): bytes(r["hash"]) for r in rows}
    missing = wanted - found.keys()
    if missing:
        raise MissingNode(f"{len(missing)} tree node(s) are not stored, e.g. {min(missing)}")
    return found


async def _proof(
    connection: Connection, ranges: list[tuple[int, int]], also: set[Node] | None = None
) -> tuple[list[bytes], dict[Node, bytes]]:
    wanted = {node for start, end in ranges for node in range_nodes(start, end)} | (also or set())
    stored = await _nodes(connection, wanted)
    return proof_from_nodes(ranges, stored.__getitem__), stored


async def inclusion_proof_at(connection: Connection, index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves (one query)."""
    proof, _ = await _proof(connection, inclusion_proof_ranges(index, size))
    return proof


async def leaf_and_inclusion_proof(
    connection: Connection, index: int, size: int
) -> tuple[bytes, list[bytes]]:
    """Leaf ``index``'s hash and its inclusion proof in the tree of ``size`` leaves, read
    together in one query (the leaf is node (0, index))."""
    proof, stored = await _proof(connection, inclusion_proof_ranges(index, size), {(0, index)})
    return stored[(0, index)], proof


async def consistency_proof_between(connection: Connection, size1: int, size2: int) -> list[bytes]:
    """The consistency proof from the tree of ``size1`` leaves to that of ``size2`` (one query)."""
    proof, _ = await _proof(connection, consistency_proof_ranges(size1, size2))
    return proof


# --- the tree over the credit log (migration 0017) ----------------------------------------------


async def tree_cursor(connection: Connection) -> tuple[LogCursor, int]:
    """Where the tree stands in the log: the (tx_id, position) of its last leaf's entry (the
    cursor ``hashes_committed_after`` continues from) and the tree's size."""
    row = await connection.fetchrow(
        """SELECT l.leaf_index, c.tx_id::text::bigint AS tx, c.position
             FROM merkle_tree_leaves l JOIN credit_log c USING (position)
            ORDER BY l.leaf_index DESC LIMIT 1"""
    )
    if row is None:
        return LogCursor(), 0
    return LogCursor(row["tx"], row["position"]), int(row["leaf_index"]) + 1


async def grow_from_log(connection: Connection, *, batch: int = 10_000) -> TreeEdge:
    """Append the log's entries not yet in the tree, in commit-safe order, as leaves (the leaf
    data is the entry's ``entry_hash``), recording each entry's leaf index; the new edge.

    Reads with the relay's follow query (``credit_log.hashes_committed_after``: the rows of
    ``read_committed_after``, only their positions and hashes), so the tree is always a prefix
    of the log that no late commit can land behind. Call in a transaction."""
    cursor, size = await tree_cursor(connection)
    edge = await latest_edge(connection)
    if edge.size != size:
        raise EdgeConflict(f"the tree's edge is at size {edge.size}, its leaves at {size}")
    while True:
        entries, cursor = await hashes_committed_after(connection, cursor, batch)
        if not entries:
            return edge
        await connection.copy_records_to_table(
            "merkle_tree_leaves",
            records=[(size + i, e.position) for i, e in enumerate(entries)],
            columns=("leaf_index", "position"),
        )
        size += len(entries)
        edge = await grow(connection, [leaf_hash(e.entry_hash) for e in entries])


class LeavesMissing(LookupError):
    """The leaf index does not hold every leaf below a tree size (rows were removed)."""


async def root_over_log(connection: Connection, tree_size: int, *, batch: int = 5000) -> bytes:
    """The Merkle root recomputed from the log itself: the first ``tree_size`` leaves, each the
    ``entry_hash`` of the entry the leaf index names, now (not from the stored nodes). Streams
    with a cursor (call it in a transaction); O(n) hashing, O(log n) memory."""
    edge = EMPTY_EDGE
    pending: list[bytes] = []
    async for row in connection.cursor(
        """SELECT l.leaf_index, c.entry_hash FROM merkle_tree_leaves l
             JOIN credit_log c USING (position)
            WHERE l.leaf_index < $1 ORDER BY l.leaf_index""",
        tree_size,
        prefetch=batch,
    ):
        if int(row["leaf_index"]) != edge.size + len(pending):
            raise LeavesMissing(f"leaf {edge.size + len(pending)} is missing from the leaf index")
        pending.append(leaf_hash(bytes(row["entry_hash"])))
        if len(pending) >= batch:
            edge, pending = extend(edge, pending), []
    edge = extend(edge, pending)
    if edge.size != tree_size:
        raise LeavesMissing(f"the leaf index holds {edge.size} of the {tree_size} leaves")
    return edge.root()
