"""Signed checkpoints under attack, on the real stack.

A database insider who rewrites an entry and re-chains every later entry of that learner makes
the chains verify again; the running checkpointer must refuse to sign over that history (and
keep refusing), and ``verify`` / VerifyLedger must keep failing and name the learner. ``verify``
must check every checkpoint against its predecessor and say plainly when no checkpoint covers
what it was asked about. Each test gets a database of its own (the checkpoint sequence is
global state).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnerledger.domain.checkpoints import Coverage, sign_checkpoint
from learnerledger.domain.hash_chain import head_of
from learnerledger.ledger.service import Checkpointer
from learnerledger.ledger.verification import (
    generate_signing_key,
    load_signing_key,
    take_checkpoint,
    verify_ledger,
)
from learnerledger.postgres import catalog
from learnerledger.postgres.checkpoints import recorded_sequence
from learnerledger.postgres.credit_log import learner_entries
from learnerledger.postgres.pool import create_pool
from learnerledger.v1 import common_pb2, ledger_admin_pb2, ledger_admin_pb2_grpc
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
from tests.support.ports import free_port
from tests.support.query import bearer, running_query, tokens
from tests.support.verifiable_log import insider_rewrite, refusals, wait_for_entries

pytestmark = pytest.mark.integration

DAVE, ERIN, FAY, GUS = "444444444444", "555555555555", "666666666666", "777777777777"


@pytest.fixture
async def database(stack: StackInfo, stack_logins: dict[str, str]) -> AsyncIterator[FreshDatabase]:
    async with new_database(stack, stack_logins) as db:
        yield db


async def sign_until_covered(url: str, key: Ed25519PrivateKey) -> int:
    """Sign checkpoints (as the checkpointer does) until one covers the whole log; its number.

    The horizon is cluster-wide, so a checkpoint may trail the log for a moment."""
    connection = await asyncpg.connect(url)
    newest = await connection.fetchval("SELECT max(position) FROM credit_log")
    signed: list[int] = []

    async def covered() -> bool:
        recorded = await take_checkpoint(connection, key)
        signed.append(recorded.number)
        return recorded.signed.checkpoint.position >= newest

    try:
        await eventually(covered, what="a checkpoint covering the log")
    finally:
        await connection.close()
    return signed[-1]


def verify_cli(database_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("LEDGER_CHECKPOINT_SIGNING_KEY_FILE", None)
    result = ledgerctl(env, "verify", *args, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


async def test_a_consistent_rewrite_is_never_signed_and_verify_keeps_failing(
    kafka_bootstrap: str, database: FreshDatabase, topics, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    key_file = tmp_path / "checkpoint.key"
    trusted = generate_signing_key(key_file)
    await seed_catalog(database.url)
    await produce(
        kafka_bootstrap,
        topics.completions,
        [completion(DAVE, f"d-{n}") for n in range(3)] + [completion(ERIN, "e-0")],
    )
    connection = await asyncpg.connect(database.url)
    _, admin_token = await catalog.issue_token(connection, catalog.PrincipalKind.ADMIN, "ops")
    admin = (("authorization", f"Bearer {admin_token}"),)
    port = free_port()
    at_start = refusals()

    async def checkpoint_count() -> int:
        return int(await connection.fetchval("SELECT count(*) FROM checkpoints"))

    try:
        with structlog.testing.capture_logs() as logs:
            async with (
                running_ledger(
                    kafka_bootstrap,
                    database.url,
                    topics,
                    grpc_port=port,
                    checkpoint_signing_key_file=key_file,
                    checkpoint_interval_s=0.1,
                ),
                grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            ):
                stub = ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel)
                await wait_for_entries(database.url, DAVE, 3)
                await wait_for_entries(database.url, ERIN, 1)
                newest = await connection.fetchval("SELECT max(position) FROM credit_log")

                async def signed_over_dave() -> bool:
                    covered = "SELECT coalesce(max(position), 0) FROM checkpoints"
                    signed = await connection.fetchval(covered) >= newest
                    return bool(signed and await checkpoint_count() >= 3)

                await eventually(signed_over_dave, what="the checkpointer to sign over dave")
                assert refusals() == at_start  # an honest log is signed tick after tick
                before = await stub.VerifyLedger(
                    ledger_admin_pb2.VerifyLedgerRequest(), metadata=admin
                )
                assert before.checkpoint_ok, before
                assert before.checkpoint_coverage == common_pb2.CHECKPOINT_COVERAGE_VERIFIED

                first = refusals()
                forged = await insider_rewrite(database.admin_url, DAVE, 2)

                async def refused(times: int, base: float) -> None:
                    async def enough() -> bool:
                        return refusals() >= base + times

                    await eventually(enough, what=f"{times} refusals by the checkpointer")

                await refused(1, first)
                signed_at_refusal = await checkpoint_count()
                await refused(3, first)  # it keeps refusing: never re-bases onto the rewrite
                # New entries for the rewritten learner chain onto the forged head: refused too.
                await produce(kafka_bootstrap, topics.completions, [completion(DAVE, "d-3")])
                await wait_for_entries(database.url, DAVE, 4)
                await refused(2, refusals())
                assert await checkpoint_count() == signed_at_refusal
                dave_4 = await connection.fetchval(
                    "SELECT entry_hash FROM credit_log WHERE learner_id = $1 AND sequence = 4",
                    DAVE,
                )
                signed_forged = await connection.fetchval(
                    "SELECT count(*) FROM checkpoint_heads WHERE entry_hash = ANY($1::bytea[])",
                    [*forged, dave_4],
                )
                assert signed_forged == 0  # no checkpoint covers the rewritten heads

                after = await stub.VerifyLedger(
                    ledger_admin_pb2.VerifyLedgerRequest(), metadata=admin
                )
                assert not after.ok
                assert not after.checkpoint_ok
                assert after.checkpoint_coverage == common_pb2.CHECKPOINT_COVERAGE_BROKEN
                assert DAVE in {p.learner_id for p in after.checkpoint_problems}
                for_dave = await stub.VerifyLedger(
                    ledger_admin_pb2.VerifyLedgerRequest(learner_id=DAVE), metadata=admin
                )
                assert not for_dave.ok
                assert DAVE in {p.learner_id for p in for_dave.checkpoint_problems}
    finally:
        await connection.close()

    refusal_logs = [e for e in logs if e["event"] == "checkpoint_refused"]
    assert refusal_logs
    assert {e["log_level"] for e in refusal_logs} == {"error"}
    assert DAVE in refusal_logs[-1]["learner_ids"]
    assert ERIN not in refusal_logs[-1]["learner_ids"]

    # The chains alone verify (the rewrite is consistent); the checkpoints do not.
    superuser = await asyncpg.connect(database.admin_url)
    try:
        chains_only = await verify_ledger(superuser, learner_id=DAVE)
        report = await verify_ledger(superuser, trusted_public_key=trusted)
    finally:
        await superuser.close()
    assert chains_only.first_break is None
    assert not report.ok
    assert DAVE in {p.learner_id for p in report.checkpoint_problems}

    _, admin_token = await tokens(database.url)
    async with running_query(database.url) as query:
        proof = await query.VerifyEntry(
            pb.VerifyEntryRequest(learner_id=DAVE, sequence=2), metadata=bearer(admin_token)
        )
    assert proof.chain_valid  # the rewrite is consistent...
    assert not proof.checkpoint_valid  # ...but no longer what was signed
    assert proof.checkpoint_coverage == common_pb2.CHECKPOINT_COVERAGE_BROKEN
    assert DAVE in {p.learner_id for p in proof.checkpoint_problems}

    code, out = verify_cli(database.url, "--public-key", trusted.hex())
    assert code == 1, out
    assert f"learner {DAVE}" in out
    assert "history was rewritten" in out
    assert "ledger verified" not in out
    code, out = verify_cli(database.url, "--learner", DAVE, "--public-key", trusted.hex())
    assert code == 1, out
    assert f"learner {DAVE}" in out


async def test_verify_says_when_no_checkpoint_covers_the_log_or_the_learner(
    kafka_bootstrap: str, database: FreshDatabase, topics, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    key_file = tmp_path / "checkpoint.key"
    trusted = generate_signing_key(key_file).hex()
    await seed_catalog(database.url)
    requests = [completion(FAY, f"f-{n}") for n in range(2)]
    await produce(kafka_bootstrap, topics.completions, requests)
    port = free_port()
    _, admin_token = await tokens(database.url)
    async with (
        running_ledger(kafka_bootstrap, database.url, topics, grpc_port=port),  # no checkpointer
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        await wait_for_entries(database.url, FAY, 2)
        admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel)
        unsigned = await admin.VerifyLedger(
            ledger_admin_pb2.VerifyLedgerRequest(), metadata=bearer(admin_token)
        )
        assert unsigned.ok  # nothing is broken...
        assert not unsigned.checkpoint_ok  # ...but the checkpoint part is not a success
        assert unsigned.checkpoint_coverage == common_pb2.CHECKPOINT_COVERAGE_NO_CHECKPOINT
        assert unsigned.checkpoints_checked == 0

        code, out = verify_cli(database.url, "--public-key", trusted)
        assert code == 3, out
        assert "no signed checkpoint exists" in out
        assert "match" not in out
        connection = await asyncpg.connect(database.url)
        try:
            report = await verify_ledger(connection, trusted_public_key=bytes.fromhex(trusted))
        finally:
            await connection.close()
        assert report.ok  # nothing is broken...
        assert report.coverage is Coverage.NO_CHECKPOINT  # ...but nothing is signed either
        assert not report.protected
        async with running_query(database.url) as query:
            proof = await query.VerifyEntry(
                pb.VerifyEntryRequest(learner_id=FAY, sequence=1), metadata=bearer(admin_token)
            )
        assert proof.chain_valid
        assert not proof.checkpoint_valid
        assert proof.checkpoint_coverage == common_pb2.CHECKPOINT_COVERAGE_NO_CHECKPOINT
        assert not proof.HasField("latest_checkpoint")

        await sign_until_covered(database.url, load_signing_key(key_file))
        await produce(kafka_bootstrap, topics.completions, [completion(GUS, "g-0")])
        await wait_for_entries(database.url, GUS, 1)

    async with running_query(database.url) as query:
        proof = await query.VerifyEntry(
            pb.VerifyEntryRequest(learner_id=GUS, sequence=1), metadata=bearer(admin_token)
        )
        covered = await query.VerifyEntry(
            pb.VerifyEntryRequest(learner_id=FAY, sequence=2), metadata=bearer(admin_token)
        )
    assert covered.checkpoint_valid
    assert covered.checkpoint_covers_entry
    assert covered.checkpoint_head.sequence == 2
    assert covered.checkpoint_coverage == common_pb2.CHECKPOINT_COVERAGE_VERIFIED
    assert proof.chain_valid
    assert not proof.checkpoint_valid
    assert not proof.checkpoint_covers_entry
    assert proof.checkpoint_coverage == common_pb2.CHECKPOINT_COVERAGE_NOT_COVERED
    code, out = verify_cli(database.url, "--learner", GUS, "--public-key", trusted)
    assert code == 3, out
    assert f"no signed checkpoint covers learner {GUS}" in out
    assert "match" not in out
    code, out = verify_cli(database.url, "--learner", FAY, "--public-key", trusted)
    assert code == 0, out
    assert "match" in out


async def test_the_checkpointer_refuses_when_its_last_checkpoint_is_removed(
    database: FreshDatabase, tmp_path: Path
) -> None:
    key_file = tmp_path / "checkpoint.key"
    generate_signing_key(key_file)
    checkpointer = Checkpointer(load_signing_key(key_file))
    pool = await create_pool(database.url, role="ll_ledger", max_size=1)  # as the ledger signs
    try:
        first = await checkpointer.tick(pool)
        second = await checkpointer.tick(pool)
        assert first is not None
        assert second is not None
        assert second.signed.checkpoint.previous == first.signed.checkpoint.digest()
        superuser = await asyncpg.connect(database.admin_url)
        try:
            await superuser.execute("SET session_replication_role = replica")
            remove = "DELETE FROM checkpoints WHERE checkpoint_id = $1"
            await superuser.execute(remove, second.number)
        finally:
            await superuser.close()
        before = refusals()
        assert await checkpointer.tick(pool) is None  # it would re-base onto #1: refused
        assert refusals() == before + 1
        assert await checkpointer.tick(pool) is None
        assert refusals() == before + 2
    finally:
        await pool.close()


@pytest.mark.parametrize("attack", ["forged_with_another_key", "removed"])
async def test_a_replaced_or_removed_middle_checkpoint_fails_verify(
    kafka_bootstrap: str, database: FreshDatabase, topics, tmp_path: Path, attack: str
) -> None:  # type: ignore[no-untyped-def]
    key_file = tmp_path / "checkpoint.key"
    trusted = generate_signing_key(key_file)
    key = load_signing_key(key_file)
    await seed_catalog(database.url)
    numbers = []
    async with running_ledger(kafka_bootstrap, database.url, topics):
        for n in range(3):
            await produce(kafka_bootstrap, topics.completions, [completion(FAY, f"f-{n}")])
            await wait_for_entries(database.url, FAY, n + 1)
            numbers.append(await sign_until_covered(database.url, key))
    code, out = verify_cli(database.url, "--public-key", trusted.hex())
    assert code == 0, out

    middle = numbers[1]
    superuser = await asyncpg.connect(database.admin_url)
    try:
        stored = {r.number: r for r in await recorded_sequence(superuser)}
        await superuser.execute("SET session_replication_role = replica")  # bypasses triggers
        if attack == "removed":
            await superuser.execute("DELETE FROM checkpoint_heads WHERE checkpoint_id = $1", middle)
            await superuser.execute("DELETE FROM checkpoints WHERE checkpoint_id = $1", middle)
            successor = min(n for n in stored if n > middle)
            expected = f"checkpoint #{successor}: it does not extend its predecessor"
        else:  # the insider signs the same statement with a key of their own
            forged = sign_checkpoint(stored[middle].signed.checkpoint, Ed25519PrivateKey.generate())
            await superuser.execute(
                "UPDATE checkpoints SET signature = $2, public_key = $3 WHERE checkpoint_id = $1",
                middle,
                forged.signature,
                forged.public_key,
            )
            expected = f"checkpoint #{middle}: its signature does not verify with the trusted key"
        report = await verify_ledger(superuser, trusted_public_key=trusted)
        heads = await learner_entries(superuser, FAY)
    finally:
        await superuser.close()
    assert head_of(heads[-1]).sequence == 3
    assert not report.ok
    assert report.coverage is Coverage.BROKEN
    code, out = verify_cli(database.url, "--public-key", trusted.hex())
    assert code == 1, out
    assert expected in out
    assert "ledger verified" not in out
