"""The incremental tree in PostgreSQL (migrations 0015-0016, postgres/merkle_tree.py): the
ledger's role records edges and nodes as the tree grows, a size keeps its edge, rows never
change, and proofs read from the stored nodes equal the reference proofs and verify."""

from __future__ import annotations

import asyncpg
import pytest

from learnerledger.domain.merkle import (
    EMPTY_EDGE,
    TreeEdge,
    consistency_proof,
    extend,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from learnerledger.postgres.merkle_tree import (
    EdgeConflict,
    MissingNode,
    consistency_proof_between,
    edge_at,
    grow,
    inclusion_proof_at,
    latest_edge,
    record_edge,
)
from learnerledger.postgres.pool import create_pool
from tests.conftest import StackInfo, new_database

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


async def test_proofs_come_from_the_stored_nodes(
    stack: StackInfo, stack_logins: dict[str, str]
) -> None:
    leaves = [leaf_hash(b"grown" + n.to_bytes(4, "big")) for n in range(45)]
    async with new_database(stack, stack_logins) as database:  # a tree of its own
        pool = await create_pool(database.url, role="ll_ledger", max_size=1)
        try:
            async with pool.acquire() as connection:
                for start, stop in ((0, 1), (1, 13), (13, 32), (32, 45)):
                    async with connection.transaction():
                        edge = await grow(connection, leaves[start:stop])
                    assert edge.root() == root(leaves[:stop])
                    for index in (0, stop // 2, stop - 1):
                        proof = await inclusion_proof_at(connection, index, stop)
                        assert proof == inclusion_proof(index, leaves[:stop])
                        verify_inclusion(index, stop, leaves[index], proof, root(leaves[:stop]))
                for old, new in ((1, 45), (13, 32), (20, 45), (32, 32)):
                    proof = await consistency_proof_between(connection, old, new)
                    assert proof == consistency_proof(old, leaves[:new])
                    verify_consistency(old, new, proof, root(leaves[:old]), root(leaves[:new]))
                with pytest.raises(MissingNode):
                    await inclusion_proof_at(connection, 3, 46)
        finally:
            await pool.close()
