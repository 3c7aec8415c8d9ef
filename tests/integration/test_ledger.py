"""The ledger on real Kafka and PostgreSQL: outcomes, dead letters, outbox order, verify."""

from __future__ import annotations

from collections import defaultdict

import asyncpg
import pytest

from learnerledger.domain.events import Result
from learnerledger.kafka.codec import decode_ledger_entry
from learnerledger.ledger.verification import verify_ledger
from learnerledger.v1 import events_pb2
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    read_topic,
    revocation,
    running_ledger,
    seed_catalog,
)

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL = "111111111111", "222222222222", "333333333333"


async def test_each_outcome_is_appended_or_rejected_with_its_reason(
    kafka_bootstrap: str, database_url: str, admin_database_url: str, topics
) -> None:  # type: ignore[no-untyped-def]
    await seed_catalog(database_url)
    await produce(
        kafka_bootstrap,
        topics.completions,
        [
            completion(ALICE, "a-1"),  # credit awarded: 90 h -> 3 credits
            completion(ALICE, "a-1"),  # the same again (a partner retry): no-op
            completion(ALICE, "a-2", course_id="db-201"),  # pending course: without credit
            completion(ALICE, "a-3", result=Result.FAIL, score=10.0),  # fail: without credit
            completion(BOB, "b-1", course_id="nope"),  # unknown course: rejected
            completion(BOB, "b-2", course_id="os-301"),  # nptel's course, sent by swayam
            completion(ALICE, "a-1", score=99.0),  # same completion, new content: conflict
            revocation(ALICE, "a-1", issuer_id="nptel"),  # not nptel's completion: rejected
            revocation(ALICE, "a-1"),  # revoked by its issuer: CreditRevoked
            revocation(CAROL, "zzz"),  # nothing to revoke: rejected
            consent(ALICE),  # consent granted
            (b"garbage-key", b"\xff\x00not a protobuf"),  # undecodable: dead letter
        ],
    )
    async with running_ledger(kafka_bootstrap, database_url, topics):
        connection = await asyncpg.connect(database_url)
        try:

            async def settled() -> bool:
                entries = await connection.fetchval("SELECT count(*) FROM credit_log")
                rejected = await connection.fetchval("SELECT count(*) FROM rejections")
                return entries == 5 and rejected == 6

            await eventually(settled, what="5 entries and 6 rejections")
            rows = await connection.fetch(
                "SELECT sequence, kind, completion_id, payload->>'credits' AS credits, "
                "payload->>'no_credit_reason' AS why FROM credit_log WHERE learner_id = $1 "
                "ORDER BY sequence",
                ALICE,
            )
            assert [(r["sequence"], r["kind"], r["completion_id"]) for r in rows] == [
                (1, "credit_awarded", "a-1"),
                (2, "recorded_without_credit", "a-2"),
                (3, "recorded_without_credit", "a-3"),
                (4, "credit_revoked", "a-1"),
                (5, "consent_granted", None),
            ]
            assert rows[0]["credits"] == "3.0"
            assert [rows[1]["why"], rows[2]["why"]] == ["course_not_approved", "result_fail"]
            reasons = sorted(
                r["reason"] for r in await connection.fetch("SELECT reason FROM rejections")
            )
            assert reasons == sorted(
                [
                    "unknown_course",
                    "foreign_course",
                    "completion_conflict",
                    "revocation_target_not_found",
                    "revocation_target_not_found",
                    "not_protobuf",
                ]
            )
            report = await verify_ledger(connection)
            assert report.ok
            assert (report.learners_checked, report.entries_checked) == (1, 5)
        finally:
            await connection.close()

        dead = await read_topic(kafka_bootstrap, topics.completions_dlq, 6)
        letters = [events_pb2.DeadLetter.FromString(r.value) for r in dead]
        # The dead-letter topic is at least once (sent before the batch commits); the
        # rejections table above is exactly once.
        garbage = [d for d in letters if d.reason == "not_protobuf"]
        assert len({(d.source_partition, d.source_offset) for d in garbage}) == 1
        assert garbage[0].original_value == b"\xff\x00not a protobuf"
        assert garbage[0].source_topic == topics.completions
        headers = dict(next(r for r in dead if r.key == b"garbage-key").headers)
        assert headers["reason"] == b"not_protobuf"
        assert int(headers["source_offset"]) == garbage[0].source_offset

        published = await read_topic(kafka_bootstrap, topics.ledger_entries, 5)
        entries = [decode_ledger_entry(r.value) for r in published]
        assert [e.sequence for e in entries] == [1, 2, 3, 4, 5]
        assert all(r.key == ALICE.encode() for r in published)


async def test_outbox_delivers_every_entry_in_per_learner_order(
    kafka_bootstrap: str, database_url: str, topics
) -> None:  # type: ignore[no-untyped-def]
    await seed_catalog(database_url)
    learners = [f"9000000000{i:02d}" for i in range(20)]
    requests = [completion(learner, f"{learner}-{n}") for n in range(10) for learner in learners]
    # The database is shared by this module's tests: the relay republishes their entries too.
    connection = await asyncpg.connect(database_url)
    earlier = await connection.fetchval("SELECT count(*) FROM credit_log")
    await connection.close()
    await produce(kafka_bootstrap, topics.completions, requests)
    async with running_ledger(kafka_bootstrap, database_url, topics):
        published = await read_topic(
            kafka_bootstrap, topics.ledger_entries, earlier + 200, timeout=60
        )
    sequences: dict[str, list[int]] = defaultdict(list)
    for record in published:
        entry = decode_ledger_entry(record.value)
        assert record.key == entry.learner_id.encode()
        if entry.learner_id in learners:
            sequences[entry.learner_id].append(entry.sequence)
    assert set(sequences) == set(learners)
    for learner, seen in sequences.items():
        assert seen[:10] == list(range(1, 11)), learner


async def test_tampering_is_found_by_verify_and_the_service_role_cannot_update(
    kafka_bootstrap: str, database_url: str, admin_database_url: str, topics
) -> None:  # type: ignore[no-untyped-def]
    await seed_catalog(database_url)
    await produce(
        kafka_bootstrap,
        topics.completions,
        [completion(CAROL, f"c-{n}") for n in range(4)],
    )
    async with running_ledger(kafka_bootstrap, database_url, topics):
        connection = await asyncpg.connect(database_url)
        try:

            async def appended() -> bool:
                return (
                    await connection.fetchval(
                        "SELECT count(*) FROM credit_log WHERE learner_id = $1", CAROL
                    )
                    == 4
                )

            await eventually(appended, what="4 entries for carol")
        finally:
            await connection.close()

    service = await asyncpg.connect(database_url)
    try:
        await service.execute('SET ROLE "ll_ledger"')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await service.execute(
                "UPDATE credit_log SET payload = '{}' WHERE learner_id = $1", CAROL
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await service.execute("DELETE FROM credit_log WHERE learner_id = $1", CAROL)
        await service.execute("RESET ROLE")
        # Even the owner is stopped by the trigger.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await service.execute("UPDATE credit_log SET rules_version = 2")
    finally:
        await service.close()

    superuser = await asyncpg.connect(admin_database_url)
    try:
        await superuser.execute("SET session_replication_role = replica")  # bypasses triggers
        await superuser.execute(
            """UPDATE credit_log SET payload = jsonb_set(payload, '{credits}', '40')
                WHERE learner_id = $1 AND sequence = 3""",
            CAROL,
        )
        report = await verify_ledger(superuser, learner_id=CAROL)
    finally:
        await superuser.close()
    assert not report.ok
    assert report.first_break is not None
    assert (report.first_break.learner_id, report.first_break.sequence) == (CAROL, 3)
