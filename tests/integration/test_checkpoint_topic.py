"""Signed tree heads on the topic ``ledger.checkpoints.v1`` and a witness that follows them,
on the real stack: the running checkpointer appends every head it signs, in order,
each with the consistency proof from the one before; ``ledgerctl witness follow`` accepts them
from the topic and raises an alarm (exit 1, state kept) on a rolled-back head appended to the
topic, and, polling ``GET /checkpoint``, on a history an insider rewrote and re-signed."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from learnerledger.domain import merkle
from learnerledger.domain.proofs import ConsistencyProof, parse_consistency_proof
from learnerledger.domain.signed_note import NoteSigner, parse_verifier_key
from learnerledger.domain.tlog_checkpoint import TreeCheckpoint, open_checkpoint, sign_checkpoint
from learnerledger.kafka.producer import header
from learnerledger.kafka.security import client_options
from learnerledger.ledger.verification import generate_signing_key, load_signing_key
from tests.conftest import FreshDatabase, StackInfo, new_database
from tests.support.cli import ledgerctl
from tests.support.ledger import (
    completion,
    eventually,
    produce,
    running_ledger,
    seed_catalog,
)
from tests.support.verifiable_log import running_http, tree_head_over_log, wait_for_entries

pytestmark = pytest.mark.integration

ORIGIN = "test.learnerledger/topic"
DAVE, ERIN = "444444444444", "555555555555"


@pytest.fixture
async def database(stack: StackInfo, stack_logins: dict[str, str]) -> AsyncIterator[FreshDatabase]:
    async with new_database(stack, stack_logins) as db:
        yield db


async def topic_records(bootstrap: str, topic: str) -> list[Any]:
    """Every record of the one-partition ``topic``, from its start to its end now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **client_options()
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        records: list[Any] = []
        while len(records) < end:
            batch = await consumer.getmany(partition, timeout_ms=1000)
            records.extend(batch.get(partition, []))
        return records
    finally:
        await consumer.stop()


async def append_to_topic(bootstrap: str, topic: str, note: str, proof: str | None) -> None:
    """What an insider with Kafka write access might append."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **client_options())
    await producer.start()
    try:
        headers = [("consistency-proof", proof.encode())] if proof else []
        await producer.send_and_wait(topic, value=note.encode(), headers=headers)
    finally:
        await producer.stop()


def witness(bootstrap: str, state: Path, vkey: str, *source: str) -> tuple[int, str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    args = ["witness", "follow", *source, "--once", "--state", str(state), "--key", vkey]
    result = ledgerctl(env, *args, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout + result.stderr


async def published_up_to(url: str, topic: str, size: int) -> None:
    connection = await asyncpg.connect(url)
    try:

        async def published() -> bool:
            done = await connection.fetchval(
                "SELECT max(tree_size) FROM tree_head_publications WHERE topic = $1", topic
            )
            return done == size

        await eventually(published, what=f"the tree head of size {size} on {topic}")
    finally:
        await connection.close()


async def test_the_topic_carries_every_head_and_a_following_witness_catches_rollback_and_fork(
    kafka_bootstrap: str, database: FreshDatabase, topics: Any, tmp_path: Path
) -> None:
    key_file = tmp_path / "checkpoint.key"
    generate_signing_key(key_file)
    signer = NoteSigner(ORIGIN, load_signing_key(key_file))
    vkey = signer.verifier.verifier_key()
    verifier = parse_verifier_key(vkey)
    await seed_catalog(database.url)
    async with running_ledger(
        kafka_bootstrap,
        database.url,
        topics,
        checkpoint_signing_key_file=key_file,
        checkpoint_interval_s=0.1,
        log_origin=ORIGIN,
    ):
        await produce(
            kafka_bootstrap, topics.completions, [completion(DAVE, f"d-{n}") for n in range(3)]
        )
        await wait_for_entries(database.url, DAVE, 3)
        size1, note1 = await tree_head_over_log(database.url)
        await published_up_to(database.url, topics.checkpoints, size1)
        await produce(
            kafka_bootstrap, topics.completions, [completion(ERIN, f"e-{n}") for n in range(2)]
        )
        await wait_for_entries(database.url, ERIN, 2)
        size2, note2 = await tree_head_over_log(database.url)
        await published_up_to(database.url, topics.checkpoints, size2)
    assert size2 == 5

    # every signed head, in order of tree size, each linked to the one before by its proof
    records = await topic_records(kafka_bootstrap, topics.checkpoints)
    notes = [r.value.decode() for r in records]
    heads = [open_checkpoint(note, verifier, origin=ORIGIN) for note in notes]
    assert [h.size for h in heads] == sorted({h.size for h in heads})
    assert note1 in notes
    assert notes[-1] == note2
    assert header(records[0].headers, "consistency-proof") is None
    for before, record, head in zip(heads, records[1:], heads[1:], strict=False):
        proof = parse_consistency_proof(header(record.headers, "consistency-proof") or "")
        assert (proof.old_size, proof.new_size) == (before.size, head.size)
        merkle.verify_consistency(
            before.size, head.size, list(proof.proof), before.root_hash, head.root_hash
        )

    follower = tmp_path / "follower.json"
    code, out = witness(kafka_bootstrap, follower, vkey, "--topic", topics.checkpoints)
    assert code == 0, out
    assert f"now at tree size {size2}" in out
    state = json.loads(follower.read_text())
    assert state["checkpoint"] == note2
    assert state["follow"] == {"topic": topics.checkpoints, "next_offset": len(records)}
    code, out = witness(kafka_bootstrap, follower, vkey, "--topic", topics.checkpoints)
    assert code == 0, out
    assert "0 new head(s) accepted" in out

    # Rollback: the first head appended to the topic again, after the later ones.
    await append_to_topic(kafka_bootstrap, topics.checkpoints, notes[0], None)
    saved = follower.read_text()
    code, out = witness(kafka_bootstrap, follower, vkey, "--topic", topics.checkpoints)
    assert code == 1, out
    assert "ALARM (Rollback)" in out
    assert f"offset {len(records)} of {topics.checkpoints}" in out
    assert follower.read_text() == saved  # the state stays at the last head accepted
    code, out = witness(kafka_bootstrap, follower, vkey, "--topic", topics.checkpoints)
    assert code == 1, out  # and it keeps refusing

    # A witness reading the topic from the start on a state it got elsewhere skips the
    # history before its head, and stops at the same rollback.
    late = tmp_path / "late.json"
    late.write_text(json.dumps({"format": "learnerledger/witness-state/v1", "checkpoint": note1}))
    code, out = witness(kafka_bootstrap, late, vkey, "--topic", topics.checkpoints)
    assert code == 1, out
    assert "ALARM (Rollback)" in out
    assert json.loads(late.read_text())["checkpoint"] == note2  # it got that far

    # Fork, over HTTP: a poller accepts the head served now; then an insider who holds the key
    # rewrites history and serves a re-signed tree head of the same size.
    poller = tmp_path / "poller.json"  # (the CLI in a thread: this loop serves its requests)
    async with running_http(database.url) as base:
        code, out = await asyncio.to_thread(witness, kafka_bootstrap, poller, vkey, "--url", base)
        assert code == 0, out
        assert json.loads(poller.read_text())["checkpoint"] == note2

        other_root = merkle.root([merkle.leaf_hash(bytes([n])) for n in range(size2)])
        forged = sign_checkpoint(TreeCheckpoint(ORIGIN, size2, other_root), signer)
        superuser = await asyncpg.connect(database.admin_url)
        try:
            for table in ("tree_head_publications", "tree_heads"):
                await superuser.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                await superuser.execute(f"DELETE FROM {table}")
                await superuser.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            await superuser.execute(
                "INSERT INTO tree_heads (tree_size, root_hash, note) VALUES ($1, $2, $3)",
                size2,
                other_root,
                forged,
            )
        finally:
            await superuser.close()
        saved = poller.read_text()
        code, out = await asyncio.to_thread(witness, kafka_bootstrap, poller, vkey, "--url", base)
        assert code == 1, out
        assert "ALARM (Fork)" in out
        assert poller.read_text() == saved

    # ... and the same forgery appended to the topic, a larger tree with a made-up proof from
    # the head the follower accepted, is a fork too.
    bigger = merkle.root([merkle.leaf_hash(bytes([n])) for n in range(size2 + 1)])
    fake_proof = ConsistencyProof(size2, size2 + 1, (bigger,)).to_json()
    fork_note = sign_checkpoint(TreeCheckpoint(ORIGIN, size2 + 1, bigger), signer)
    fresh = tmp_path / "fresh.json"
    fresh.write_text(
        json.dumps(
            {
                "format": "learnerledger/witness-state/v1",
                "checkpoint": note2,
                "follow": {"topic": topics.checkpoints, "next_offset": len(records) + 1},
            }
        )
    )
    await append_to_topic(kafka_bootstrap, topics.checkpoints, fork_note, fake_proof)
    code, out = witness(kafka_bootstrap, fresh, vkey, "--topic", topics.checkpoints)
    assert code == 1, out
    assert "ALARM (Fork)" in out
