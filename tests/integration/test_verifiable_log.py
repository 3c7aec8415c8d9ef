"""The verifiable log on the real stack: the running checkpointer grows the Merkle
tree from the log and signs tree heads; an entry exported from the database verifies offline
with only the published verifier key, and every forgery of the bundle is refused; consistency
proofs served over gRPC verify offline; the witness accepts the honest sequence and raises an
alarm on a rollback and on a history an insider rewrote and re-signed with the real key.
Each test gets a database of its own (the tree is global state).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnerledger.domain.merkle import leaf_hash, root_from_inclusion_proof
from learnerledger.domain.proofs import ConsistencyProof
from learnerledger.domain.signed_note import NoteSigner, parse_verifier_key
from learnerledger.domain.tlog_checkpoint import TreeCheckpoint, open_checkpoint, sign_checkpoint
from learnerledger.ledger.service import Checkpointer
from learnerledger.ledger.tree_heads import TreeHeadResult, take_tree_head
from learnerledger.ledger.verification import (
    CheckpointRefused,
    generate_signing_key,
    load_signing_key,
)
from learnerledger.postgres.credit_log import append_entries
from learnerledger.postgres.merkle_tree import grow_from_log
from learnerledger.postgres.pool import create_pool
from learnerledger.postgres.tree_heads import inclusion_at
from learnerledger.v1 import transcript_query_pb2 as pb
from tests.conftest import FreshDatabase, StackInfo, new_database
from tests.support.cli import ledgerctl
from tests.support.ledger import (
    completion,
    eventually,
    produce,
    running_ledger,
    seed_catalog,
)
from tests.support.query import bearer, running_query, tokens
from tests.support.verifiable_log import (
    first_entry,
    insider_rewrite,
    refusals,
    tree_head_over_log,
    wait_for_entries,
)

pytestmark = pytest.mark.integration

ORIGIN = "test.learnerledger/log"
DAVE, ERIN = "444444444444", "555555555555"


@pytest.fixture
async def database(stack: StackInfo, stack_logins: dict[str, str]) -> AsyncIterator[FreshDatabase]:
    async with new_database(stack, stack_logins) as db:
        yield db


def cli(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    result = ledgerctl(env, *args, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def published_key(key_file: Path) -> str:
    code, out, err = cli("", "proof", "vkey", "--name", ORIGIN, "--signing-key-file", str(key_file))
    assert code == 0, err
    return out.strip()


def verify_file(bundle: Path, vkey: str) -> tuple[int, str]:
    code, out, err = cli("", "proof", "verify", str(bundle), "--key", vkey)
    return code, out + err


async def test_an_exported_entry_verifies_offline_and_forgeries_are_refused(
    kafka_bootstrap: str, database: FreshDatabase, topics: Any, tmp_path: Path
) -> None:
    key_file = tmp_path / "checkpoint.key"
    generate_signing_key(key_file)
    await seed_catalog(database.url)
    await produce(
        kafka_bootstrap,
        topics.completions,
        [completion(DAVE, f"d-{n}") for n in range(3)] + [completion(ERIN, "e-0")],
    )
    async with running_ledger(
        kafka_bootstrap,
        database.url,
        topics,
        checkpoint_signing_key_file=key_file,
        checkpoint_interval_s=0.1,
        log_origin=ORIGIN,
    ):
        await wait_for_entries(database.url, DAVE, 3)
        await wait_for_entries(database.url, ERIN, 1)
        size, note = await tree_head_over_log(database.url)
    assert size == 4
    vkey = published_key(key_file)
    assert open_checkpoint(note, parse_verifier_key(vkey), origin=ORIGIN).size == 4

    bundle_file = tmp_path / "bundle.json"
    code, _, err = cli(
        database.url,
        "proof",
        "export",
        "--learner",
        DAVE,
        "--sequence",
        "2",
        "-o",
        str(bundle_file),
    )
    assert code == 0, err
    code, out = verify_file(bundle_file, vkey)
    assert code == 0, out
    assert f"tree size {size}" in out

    bundle = json.loads(bundle_file.read_text())
    assert json.loads(bundle["entry"]["canonical_json"])["learner_id"] == DAVE

    def forged(name: str, change: Any) -> Path:
        document = json.loads(bundle_file.read_text())
        change(document)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(document))
        return path

    def tamper_entry(d: dict[str, Any]) -> None:
        d["entry"]["canonical_json"] = d["entry"]["canonical_json"].replace(DAVE, ERIN)

    def wrong_leaf(d: dict[str, Any]) -> None:
        d["leaf_index"] = d["leaf_index"] ^ 1  # a sibling: same proof length, another leaf

    def truncate(d: dict[str, Any]) -> None:
        d["inclusion_proof"] = d["inclusion_proof"][:-1]

    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    tree = open_checkpoint(note, parse_verifier_key(vkey))

    def other_key(d: dict[str, Any]) -> None:
        d["checkpoint"] = sign_checkpoint(tree, other)

    for name, change, reason in [
        ("tampered", tamper_entry, "EntryTampered"),
        ("wrong-leaf", wrong_leaf, "WrongRoot"),
        ("truncated", truncate, "TruncatedProof"),
        ("other-key", other_key, "CheckpointNotTrusted"),
    ]:
        code, out = verify_file(forged(name, change), vkey)
        assert code == 1, (name, out)
        assert reason in out, (name, out)

    # The same proof over gRPC, against the latest head and against a requested size.
    _, admin = await tokens(database.url)
    async with running_query(database.url) as query:
        latest = await query.VerifyEntry(
            pb.VerifyEntryRequest(learner_id=DAVE, sequence=2), metadata=bearer(admin)
        )
        at_size = await query.VerifyEntry(
            pb.VerifyEntryRequest(learner_id=DAVE, sequence=2, tree_size=size),
            metadata=bearer(admin),
        )
    for response in (latest, at_size):
        assert response.in_tree
        assert response.leaf_index == bundle["leaf_index"]
        assert response.tree_size == size
        assert response.tree_head_note == note
        leaf = leaf_hash(response.entry.entry_hash)
        proof = list(response.inclusion_proof)
        assert root_from_inclusion_proof(response.leaf_index, size, leaf, proof) == tree.root_hash


async def test_consistency_proofs_from_the_server_and_the_witness_catch_rewrite_and_rollback(
    kafka_bootstrap: str, database: FreshDatabase, topics: Any, tmp_path: Path
) -> None:
    key_file = tmp_path / "checkpoint.key"
    generate_signing_key(key_file)
    vkey = published_key(key_file)
    await seed_catalog(database.url)
    university, admin = await tokens(database.url)
    notes: list[tuple[int, Path]] = []

    def saved(size: int, note: str) -> Path:
        path = tmp_path / f"checkpoint-{size}-{len(notes)}"
        path.write_text(note)
        notes.append((size, path))
        return path

    async def consistency_file(query: Any, old: int, new: int) -> Path:
        response = await query.GetConsistencyProof(
            pb.GetConsistencyProofRequest(from_size=old, to_size=new), metadata=bearer(admin)
        )
        path = tmp_path / f"proof-{old}-{new}-{len(notes)}.json"
        path.write_text(ConsistencyProof(old, new, tuple(response.proof)).to_json())
        return path

    def witness(state: Path, note: Path, proof: Path | None = None) -> tuple[int, str]:
        args = ["witness", "check", str(note), *([str(proof)] if proof else [])]
        code, out, err = cli("", *args, "--state", str(state), "--key", vkey)
        return code, out + err

    follower, laggard = tmp_path / "follower.json", tmp_path / "laggard.json"
    async with (
        running_ledger(
            kafka_bootstrap,
            database.url,
            topics,
            checkpoint_signing_key_file=key_file,
            checkpoint_interval_s=0.1,
            log_origin=ORIGIN,
        ),
        running_query(database.url) as query,
    ):
        await produce(
            kafka_bootstrap, topics.completions, [completion(DAVE, f"d-{n}") for n in range(3)]
        )
        await wait_for_entries(database.url, DAVE, 3)
        size1, _ = await tree_head_over_log(database.url)
        first = await query.GetCheckpoint(pb.GetCheckpointRequest(), metadata=bearer(admin))
        assert first.tree_size == size1
        # public-read: any valid token (a university without any learner's consent) ...
        as_university = await query.GetCheckpoint(
            pb.GetCheckpointRequest(), metadata=bearer(university)
        )
        assert as_university.note == first.note
        with pytest.raises(grpc.aio.AioRpcError) as no_token:  # ... but a token
            await query.GetCheckpoint(pb.GetCheckpointRequest())
        assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as too_far:
            await query.GetConsistencyProof(
                pb.GetConsistencyProofRequest(from_size=1, to_size=size1 + 100),
                metadata=bearer(admin),
            )
        assert too_far.value.code() == grpc.StatusCode.OUT_OF_RANGE
        old = saved(size1, first.note)
        for state in (follower, laggard):
            code, out = witness(state, old)
            assert code == 0, out

        await produce(
            kafka_bootstrap, topics.completions, [completion(ERIN, f"e-{n}") for n in range(2)]
        )
        await wait_for_entries(database.url, ERIN, 2)
        size2, _ = await tree_head_over_log(database.url)
        second = await query.GetCheckpoint(
            pb.GetCheckpointRequest(tree_size=size2), metadata=bearer(admin)
        )
        new = saved(size2, second.note)
        proof = await consistency_file(query, size1, size2)

    code, out, err = cli("", "proof", "consistency", str(old), str(new), str(proof), "--key", vkey)
    assert code == 0, out + err
    code, out = witness(follower, new, proof)
    assert code == 0, out
    assert f"grew from tree size {size1} to {size2}" in out

    code, out = witness(follower, old)  # the log shown to the witness went back
    assert code == 1, out
    assert "Rollback" in out

    # An insider rewrites dave's second entry (re-chaining the later ones), rebuilds the tree
    # from the rewritten log, and the checkpointer refuses to sign over it: the new tree does
    # not extend the last signed head.
    await insider_rewrite(database.admin_url, DAVE, 2)
    superuser = await asyncpg.connect(database.admin_url)
    try:
        tree_tables = ("merkle_tree_leaves", "merkle_tree_nodes", "merkle_tree_edges")
        for table in tree_tables:
            await superuser.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            await superuser.execute(f"DELETE FROM {table}")
            await superuser.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        async with superuser.transaction():
            rebuilt = await grow_from_log(superuser)
        assert rebuilt.size == size2

        key = load_signing_key(key_file)
        pool = await create_pool(database.url, role="ll_ledger", max_size=1)
        try:
            before = refusals()
            with structlog.testing.capture_logs() as logs:
                await Checkpointer(key, ORIGIN).tick(pool)
            # both signers refuse: the tree step, and the issue-12 checkpoint of the heads
            assert refusals() == before + 2
            reasons = [e["reason"] for e in logs if e["event"] == "checkpoint_refused"]
            assert "the Merkle tree does not extend the last signed tree head" in reasons
            async with pool.acquire() as connection:
                with pytest.raises(CheckpointRefused, match="history was rewritten"):
                    await take_tree_head(connection, NoteSigner(ORIGIN, key))
        finally:
            await pool.close()
        assert await superuser.fetchval("SELECT max(tree_size) FROM tree_heads") == size2

        # So the insider, who has the key, removes the signed heads and signs the rewritten
        # tree: the server now serves the forged head and proofs from the rebuilt tree.
        await superuser.execute("ALTER TABLE tree_heads DISABLE TRIGGER USER")
        await superuser.execute("DELETE FROM tree_heads")
        await superuser.execute("ALTER TABLE tree_heads ENABLE TRIGGER USER")
        signer = NoteSigner(ORIGIN, key)
        forged_note = sign_checkpoint(TreeCheckpoint(ORIGIN, size2, rebuilt.root()), signer)
        await superuser.execute(
            "INSERT INTO tree_heads (tree_size, root_hash, note) VALUES ($1, $2, $3)",
            size2,
            rebuilt.root(),
            forged_note,
        )
    finally:
        await superuser.close()

    async with running_query(database.url) as query:
        served = await query.GetCheckpoint(pb.GetCheckpointRequest(), metadata=bearer(admin))
        assert served.note == forged_note
        forged = saved(size2, served.note)
        forged_proof = await consistency_file(query, size1, size2)

    code, out = witness(follower, forged)  # it accepted the honest head of this size
    assert code == 1, out
    assert "Fork" in out
    code, out = witness(laggard, forged, forged_proof)  # it saw only the first head
    assert code == 1, out
    assert "Fork" in out
    code, out, err = cli(
        "", "proof", "consistency", str(old), str(forged), str(forged_proof), "--key", vkey
    )
    assert code == 1, out + err


async def test_the_tree_never_skips_an_entry_that_commits_late(database: FreshDatabase) -> None:
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    early, late, checkpointer = [await asyncpg.connect(database.url) for _ in range(3)]
    try:
        slow = early.transaction()
        await slow.start()
        await append_entries(early, [first_entry("500000000001")])  # takes the lower position
        async with late.transaction():
            await append_entries(late, [first_entry("500000000002")])  # commits first

        held_back = await take_tree_head(checkpointer, signer)
        assert held_back == TreeHeadResult(0, None)  # not the later entry alone, ahead of it

        await slow.commit()
        grown: list[TreeHeadResult] = []

        async def both_in_tree() -> bool:  # the horizon is cluster-wide: wait out other writers
            grown.append(await take_tree_head(checkpointer, signer))
            return grown[-1].tree_size == 2

        await eventually(both_in_tree, what="the tree to take both entries")
        leaves = await checkpointer.fetch(
            """SELECT c.learner_id FROM merkle_tree_leaves l JOIN credit_log c USING (position)
                ORDER BY l.leaf_index"""
        )
        assert [r["learner_id"] for r in leaves] == ["500000000001", "500000000002"]
        head = grown[-1].signed
        assert head is not None
        checkpoint = open_checkpoint(head.note, signer.verifier, origin=ORIGIN)
        for learner, index in (("500000000001", 0), ("500000000002", 1)):
            inclusion = await inclusion_at(checkpointer, learner, 1)
            assert inclusion is not None
            assert inclusion.leaf_index == index
            entry_hash = await checkpointer.fetchval(
                "SELECT entry_hash FROM credit_log WHERE learner_id = $1", learner
            )
            leaf = leaf_hash(bytes(entry_hash))
            assert (
                root_from_inclusion_proof(index, 2, leaf, inclusion.proof) == checkpoint.root_hash
            )
        assert await take_tree_head(checkpointer, signer) == TreeHeadResult(2, None)  # no growth
    finally:
        for connection in (early, late, checkpointer):
            await connection.close()
