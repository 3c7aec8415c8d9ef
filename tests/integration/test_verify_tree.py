"""``ledgerctl verify`` checks the Merkle tree too, on the real PostgreSQL: the root
recomputed over the log's prefix matches the latest signed tree head, and a consistent rewrite
of an entry (every chain still verifies) or a head signed over another root is BROKEN."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from learnerledger.domain import merkle
from learnerledger.domain.signed_note import NoteSigner
from learnerledger.domain.tlog_checkpoint import TreeCheckpoint, sign_checkpoint
from learnerledger.ledger.tree_heads import take_tree_head
from learnerledger.ledger.verification import generate_signing_key, load_signing_key
from learnerledger.postgres.credit_log import append_entries
from tests.conftest import FreshDatabase, StackInfo, new_database
from tests.support.cli import ledgerctl
from tests.support.domain import credit_log
from tests.support.ledger import eventually
from tests.support.verifiable_log import insider_rewrite

pytestmark = pytest.mark.integration

ORIGIN = "test.learnerledger/verify"


@pytest.fixture
async def database(stack: StackInfo, stack_logins: dict[str, str]) -> AsyncIterator[FreshDatabase]:
    async with new_database(stack, stack_logins) as db:
        yield db


def verify(database_url: str, public_key: str) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("LEDGER_CHECKPOINT_SIGNING_KEY_FILE", None)
    result = ledgerctl(env, "verify", "--public-key", public_key, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout + result.stderr


async def replace_tree_heads(admin_url: str, size: int, root: bytes, note: str) -> None:
    superuser = await asyncpg.connect(admin_url)
    try:
        await superuser.execute("ALTER TABLE tree_heads DISABLE TRIGGER USER")
        await superuser.execute("DELETE FROM tree_heads")
        await superuser.execute("ALTER TABLE tree_heads ENABLE TRIGGER USER")
        await superuser.execute(
            "INSERT INTO tree_heads (tree_size, root_hash, note) VALUES ($1, $2, $3)",
            size,
            root,
            note,
        )
    finally:
        await superuser.close()


async def test_verify_recomputes_the_tree_root_and_catches_one_that_does_not_match(
    database: FreshDatabase, tmp_path: Path
) -> None:
    key_file = tmp_path / "checkpoint.key"
    public = generate_signing_key(key_file).hex()
    signer = NoteSigner(ORIGIN, load_signing_key(key_file))
    log = credit_log(6, learners=2)
    connection = await asyncpg.connect(database.url)
    try:
        await append_entries(connection, log)

        async def signed() -> bool:  # the commit horizon is cluster-wide: wait out other writers
            return (await take_tree_head(connection, signer)).tree_size == len(log)

        await eventually(signed, what="a signed tree head over the log")
    finally:
        await connection.close()

    code, out = verify(database.url, public)
    assert "BROKEN" not in out, out
    assert (
        "Merkle tree: the root recomputed over the log's first 6 entries matches the latest "
        "signed tree head (size 6)" in out
    ), out
    assert code == 3, out  # chains and tree fine; no issue-12 checkpoint of the heads was signed

    # A head signed with the real key over a root that is not the log's.
    honest = merkle.root([merkle.leaf_hash(e.entry_hash) for e in log])
    other = merkle.root([merkle.leaf_hash(e.entry_hash) for e in reversed(log)])
    await replace_tree_heads(
        database.admin_url, 6, other, sign_checkpoint(TreeCheckpoint(ORIGIN, 6, other), signer)
    )
    code, out = verify(database.url, public)
    assert code == 1, out
    assert "BROKEN: Merkle tree: the root recomputed over the log's first 6 entries" in out
    assert f"not the signed root {other.hex()}" in out

    # The honest head back, signed by another key: its signature does not verify.
    stranger = NoteSigner(ORIGIN, load_signing_key(_other_key(tmp_path)))
    await replace_tree_heads(
        database.admin_url, 6, honest, sign_checkpoint(TreeCheckpoint(ORIGIN, 6, honest), stranger)
    )
    code, out = verify(database.url, public)
    assert code == 1, out
    assert "BROKEN: Merkle tree: the tree head of size 6 does not verify" in out

    # The honest head, and a consistent rewrite of one entry: every chain still verifies, the
    # tree's root over the rewritten log does not.
    await replace_tree_heads(
        database.admin_url, 6, honest, sign_checkpoint(TreeCheckpoint(ORIGIN, 6, honest), signer)
    )
    code, out = verify(database.url, public)
    assert "Merkle tree: the root recomputed" in out
    assert "BROKEN" not in out, out
    await insider_rewrite(database.admin_url, log[0].learner_id, 2)
    code, out = verify(database.url, public)
    assert code == 1, out
    assert "BROKEN: learner" not in out  # the chains were re-chained consistently
    assert "BROKEN: Merkle tree: the root recomputed over the log's first 6 entries" in out


def _other_key(tmp_path: Path) -> Path:
    path = tmp_path / "other.key"
    generate_signing_key(path)
    return path
