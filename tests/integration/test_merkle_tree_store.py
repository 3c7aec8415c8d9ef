"""The incremental tree's right edge in PostgreSQL (migration 0015, postgres/merkle_tree.py):
the ledger's role records edges as the tree grows, a size keeps its edge, and rows never change."""

from __future__ import annotations

import asyncpg
import pytest

from learnerledger.domain.merkle import EMPTY_EDGE, TreeEdge, extend, leaf_hash, root
from learnerledger.postgres.merkle_tree import EdgeConflict, edge_at, latest_edge, record_edge
from learnerledger.postgres.pool import create_pool

pytestmark = pytest.mark.integration

LEAVES = [leaf_hash(n.to_bytes(4, "big")) for n in range(23)]


async def test_the_ledger_records_the_edge_as_the_tree_grows(database_url: str) -> None:
    pool = await create_pool(database_url, role="ll_ledger", max_size=1)
    try:
        async with pool.acquire() as connection:
            assert await latest_edge(connection) == EMPTY_EDGE
            edge = EMPTY_EDGE
            for start, stop in ((0, 5), (5, 6), (6, 16), (16, 23)):
                edge = extend(await latest_edge(connection), LEAVES[start:stop])
                assert await record_edge(connection, edge) is True
            latest = await latest_edge(connection)
            assert latest.size == 23
            assert latest.root() == root(LEAVES)
            assert await edge_at(connection, 6) == extend(EMPTY_EDGE, LEAVES[:6])
            assert await edge_at(connection, 7) is None
            stored_root = await connection.fetchval(
                "SELECT root_hash FROM merkle_tree_edges WHERE tree_size = 16"
            )
            assert bytes(stored_root) == root(LEAVES[:16])
            # recording the same edge again is a no-op; another edge for that size is a fork
            assert await record_edge(connection, latest) is False
            forked = extend(extend(EMPTY_EDGE, LEAVES[:22]), [leaf_hash(b"other")])
            with pytest.raises(EdgeConflict, match="tree size 23"):
                await record_edge(connection, forked)
    finally:
        await pool.close()


async def test_recorded_edges_never_change_even_for_the_owner(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await record_edge(connection, extend(EMPTY_EDGE, LEAVES[:3]))
        for statement in (
            "UPDATE merkle_tree_edges SET root_hash = root_hash WHERE tree_size = 3",
            "DELETE FROM merkle_tree_edges WHERE tree_size = 3",
            "TRUNCATE merkle_tree_edges",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await connection.execute(statement)
        # a row whose subtree count does not fit its size is refused by the table itself
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                "INSERT INTO merkle_tree_edges (tree_size, subtree_roots, root_hash) "
                "VALUES (7, $1, $2)",
                [LEAVES[0]],
                LEAVES[0],
            )
    finally:
        await connection.close()


def test_an_edge_must_have_one_root_per_set_bit() -> None:
    with pytest.raises(ValueError, match="perfect subtrees"):
        TreeEdge(3, (LEAVES[0],))
