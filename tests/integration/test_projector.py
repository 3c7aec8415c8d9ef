"""The projector on real Kafka and PostgreSQL: the read model is the fold of the ledger."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from learnerledger.domain.transcript import TranscriptProjection
from learnerledger.kafka.codec import encode_ledger_entry
from learnerledger.kafka.security import client_options
from learnerledger.postgres import read_model
from learnerledger.postgres.credit_log import learner_entries
from learnerledger.postgres.read_model import GapNotFilled, apply_entries
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    revocation,
    running_ledger,
    seed_catalog,
)
from tests.support.projector import log_heads, projected, running_projector

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL = "411111111111", "422222222222", "433333333333"


async def caught_up(database_url: str, learners: list[str], expected: dict[str, int]) -> bool:
    return await projected(database_url, learners) == expected


async def dump_read_model(database_url: str, learners: list[str]) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(database_url)
    try:
        heads = await connection.fetch(
            "SELECT learner_id, last_sequence, ledger_position, completions_without_credit, "
            "total_credits, consents FROM read_transcripts WHERE learner_id = ANY($1::text[]) "
            "ORDER BY learner_id",
            learners,
        )
        rows = await connection.fetch(
            "SELECT * FROM read_credentials WHERE learner_id = ANY($1::text[]) "
            "ORDER BY learner_id, sequence",
            learners,
        )
    finally:
        await connection.close()
    return [tuple(r.values()) for r in heads] + [tuple(r.values()) for r in rows]


async def test_read_model_is_the_fold_of_the_ledger_and_a_replay_rebuilds_it_identically(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    await seed_catalog(database_url)
    learners = [ALICE, BOB]
    await produce(
        kafka_bootstrap,
        topics.completions,
        [
            consent(ALICE),
            completion(ALICE, "p-a1"),
            completion(ALICE, "p-a2", issuer_id="nptel", course_id="os-301"),
            completion(ALICE, "p-a3", course_id="db-201"),  # pending course: no credit
            revocation(ALICE, "p-a1"),
            completion(BOB, "p-b1"),
        ],
    )
    async with running_ledger(kafka_bootstrap, database_url, topics):
        await eventually(
            lambda: _has(database_url, {ALICE: 5, BOB: 1}), what="ledger appended every request"
        )
        expected = await log_heads(database_url, learners)
        async with running_projector(
            kafka_bootstrap, database_url, topics.ledger_entries, f"p-{topics.ledger_entries}"
        ):
            await eventually(
                lambda: caught_up(database_url, learners, expected), what="projection caught up"
            )
    connection = await asyncpg.connect(database_url)
    try:
        for learner in learners:
            stored = await read_model.load_state(connection, learner)
            folded = TranscriptProjection.fold(learner, await learner_entries(connection, learner))
            assert stored == folded
        alice = await read_model.load_state(connection, ALICE)
        assert alice is not None
        assert alice.consents == frozenset({"du"})
        assert alice.completions_without_credit == 1
        assert sorted(c.revoked_by_sequence is not None for c in alice.credentials.values()) == [
            False,
            True,
        ]
    finally:
        await connection.close()
    live = await dump_read_model(database_url, learners)
    assert len(live) == 2 + 3

    # A fresh read model (cleared tables, a new consumer group) from the whole topic.
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "DELETE FROM read_credentials WHERE learner_id = ANY($1::text[])", learners
        )
        await connection.execute(
            "DELETE FROM read_transcripts WHERE learner_id = ANY($1::text[])", learners
        )
    finally:
        await connection.close()
    async with running_projector(
        kafka_bootstrap, database_url, topics.ledger_entries, f"replay-{topics.ledger_entries}"
    ):
        await eventually(
            lambda: caught_up(database_url, learners, expected), what="replay caught up"
        )
    assert await dump_read_model(database_url, learners) == live


async def _has(database_url: str, counts: dict[str, int]) -> bool:
    return await log_heads(database_url, list(counts)) == counts


async def test_a_gap_is_filled_from_the_ledger_never_applied_out_of_order(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    await seed_catalog(database_url)
    await produce(
        kafka_bootstrap,
        topics.completions,
        [completion(CAROL, f"g-{i}") for i in range(1, 4)] + [revocation(CAROL, "g-2")],
    )
    async with running_ledger(kafka_bootstrap, database_url, topics):
        await eventually(lambda: _has(database_url, {CAROL: 4}), what="ledger appended")
    connection = await asyncpg.connect(database_url)
    try:
        entries = await learner_entries(connection, CAROL)
        # Directly: entry 3 with nothing applied fills 1 and 2 from the log first.
        async with connection.transaction():
            result = await apply_entries(connection, [entries[2]])
            assert (result.applied, result.filled) == (1, 2)
            state = await read_model.load_state(connection, CAROL)
            assert state == TranscriptProjection.fold(CAROL, entries[:3])
        # An entry the log does not hold (a forged sequence 9) is refused, not applied.
        forged = dataclasses.replace(entries[3], sequence=9)
        with pytest.raises(GapNotFilled):
            async with connection.transaction():
                await apply_entries(connection, [forged])
        state = await read_model.load_state(connection, CAROL)
        assert state is not None
        assert state.last_sequence == 3
        # Start the Kafka part from an empty read model, so entry 4 arrives first into a gap.
        await connection.execute("DELETE FROM read_credentials WHERE learner_id = $1", CAROL)
        await connection.execute("DELETE FROM read_transcripts WHERE learner_id = $1", CAROL)
    finally:
        await connection.close()

    # Through Kafka: the entries published newest first on a scratch topic.
    scratch = f"ledger.entries.scratch.{secrets.token_hex(4)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, **client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(scratch, num_partitions=1, replication_factor=1)])
        await produce(
            kafka_bootstrap,
            scratch,
            [(e.learner_id.encode(), encode_ledger_entry(e)) for e in reversed(entries)],
        )
        async with running_projector(kafka_bootstrap, database_url, scratch, f"g-{scratch}"):
            await eventually(
                lambda: caught_up(database_url, [CAROL], {CAROL: 4}), what="gap projection"
            )
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics([scratch])
        await admin.close()
    connection = await asyncpg.connect(database_url)
    try:
        assert await read_model.load_state(connection, CAROL) == TranscriptProjection.fold(
            CAROL, entries
        )
    finally:
        await connection.close()
