"""Versioned credit rules, hours basis and levels on real PostgreSQL and Kafka."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import grpc
import pytest

from learnerledger.domain.catalog import Course, CourseCategory, CreditRecommendation
from learnerledger.domain.credit_rules import CreditRules, RulesHistory
from learnerledger.domain.events import (
    CURRENT_SCHEMA_VERSION,
    CreditRedecisionRequested,
    Envelope,
    redecision_event_id,
)
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.ledger.appender import CreditLogAppender, SourceRecord
from learnerledger.postgres import catalog
from learnerledger.postgres.pool import create_pool
from learnerledger.v1 import common_pb2, events_pb2, ledger_admin_pb2, ledger_admin_pb2_grpc
from tests.support.ledger import (
    completion,
    eventually,
    produce,
    read_topic,
    running_ledger,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

LEARNER = "414141414141"


async def test_courses_declare_hours_and_levels_and_entries_record_them(
    kafka_bootstrap: str, database_url: str, topics
) -> None:  # type: ignore[no-untyped-def]
    """Through the ledger's admin API and the completions topic: an NHEQF course with hours per
    component and a skilling course at level 2.5 are created; a university course at 2.5 is
    refused by the API and by PostgreSQL alike; the credit entries record basis and hours."""
    connection = await asyncpg.connect(database_url)
    _, token = await catalog.issue_token(connection, catalog.PrincipalKind.ADMIN, "rules")
    admin = (("authorization", f"Bearer {token}"),)
    port = free_port()
    try:
        async with (
            running_ledger(kafka_bootstrap, database_url, topics, grpc_port=port),
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel)
            await stub.CreateIssuer(
                ledger_admin_pb2.CreateIssuerRequest(
                    issuer=ledger_admin_pb2.Issuer(issuer_id="nsdc", display_name="NSDC")
                ),
                metadata=admin,
            )

            async def create(**fields: object) -> common_pb2.Course:
                course = common_pb2.Course(issuer_id="nsdc", title="A course", **fields)  # type: ignore[arg-type]
                response = await stub.CreateCourse(
                    ledger_admin_pb2.CreateCourseRequest(course=course), metadata=admin
                )
                await stub.ApproveCourse(
                    ledger_admin_pb2.ApproveCourseRequest(course_id=course.course_id),
                    metadata=admin,
                )
                return response.course

            lab = await create(
                course_id="lab-1",
                level=common_pb2.NCRF_LEVEL_5,
                notional_hours=90,
                hours_basis=common_pb2.HOURS_BASIS_NHEQF,
                theory_hours=30,
                practical_hours=30,
                experiential_hours=30,
            )
            assert (lab.hours_basis, lab.theory_hours, lab.experiential_hours) == (
                common_pb2.HOURS_BASIS_NHEQF,
                30,
                30,
            )
            weld = await create(
                course_id="weld-1",
                level=common_pb2.NCRF_LEVEL_2_5,
                notional_hours=60,
                category=common_pb2.COURSE_CATEGORY_SKILLING,
            )
            assert weld.level == common_pb2.NCRF_LEVEL_2_5

            refusals = [
                ("course.level", {"level": common_pb2.NCRF_LEVEL_2_5, "notional_hours": 60}),
                (
                    "course.hours_basis",
                    {
                        "level": common_pb2.NCRF_LEVEL_5,
                        "notional_hours": 60,
                        "hours_basis": common_pb2.HOURS_BASIS_NHEQF,
                    },
                ),
                (
                    "course.notional_hours",
                    {"level": common_pb2.NCRF_LEVEL_5, "notional_hours": 61, "theory_hours": 60},
                ),
            ]
            for field, fields in refusals:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await create(course_id=f"bad-{field}", **fields)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert field in (refused.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as recategorised:
                await stub.SetCourseCategory(
                    ledger_admin_pb2.SetCourseCategoryRequest(
                        course_id="weld-1",
                        category=common_pb2.COURSE_CATEGORY_UNIVERSITY_COURSE,
                        reason="reclassified",
                    ),
                    metadata=admin,
                )
            assert recategorised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

            # PostgreSQL agrees with the domain (migration 0040).
            for level, category in (("2.5", "university_course"), ("0.5", "skilling")):
                with pytest.raises(asyncpg.CheckViolationError):
                    await connection.execute(
                        "INSERT INTO courses (course_id, issuer_id, title, ncrf_level, "
                        "notional_hours, skills, category) "
                        "VALUES ($1, 'nsdc', 't', $2, 30, '{}', $3)",
                        f"raw-{level}",
                        Decimal(level),
                        category,
                    )
            with pytest.raises(asyncpg.CheckViolationError):
                await connection.execute(
                    "INSERT INTO courses (course_id, issuer_id, title, ncrf_level, notional_hours,"
                    " skills, hours_basis) VALUES ('raw-nheqf', 'nsdc', 't', 5, 30, '{}', 'nheqf')"
                )

            done = datetime.now(UTC)  # after the approvals took effect
            await produce(
                kafka_bootstrap,
                topics.completions,
                [
                    completion(
                        LEARNER, "lab-c", issuer_id="nsdc", course_id="lab-1", completed_at=done
                    ),
                    completion(
                        LEARNER, "weld-c", issuer_id="nsdc", course_id="weld-1", completed_at=done
                    ),
                ],
            )

            async def both_credited() -> bool:
                count = await connection.fetchval(
                    "SELECT count(*) FROM credit_log WHERE learner_id = $1 "
                    "AND kind = 'credit_awarded'",
                    LEARNER,
                )
                return bool(count == 2)

            await eventually(both_credited, what="both completions credited")
            rows = {
                r["course"]: r
                for r in await connection.fetch(
                    "SELECT payload->>'course_id' AS course, payload, rules_version "
                    "FROM credit_log WHERE learner_id = $1",
                    LEARNER,
                )
            }
            lab_payload = _json(rows["lab-1"]["payload"])
            # 30/15 + 30/30 + 30/45 = 3 2/3 credits -> 3.5
            assert lab_payload["hours_basis"] == "nheqf"
            assert lab_payload["credits"] == 3.5
            assert (
                lab_payload["theory_hours"],
                lab_payload["practical_hours"],
                lab_payload["experiential_hours"],
            ) == (30, 30, 30)
            weld_payload = _json(rows["weld-1"]["payload"])
            assert (weld_payload["level"], weld_payload["credits"]) == ("2.5", 2.0)
            assert "theory_hours" not in weld_payload
            assert {r["rules_version"] for r in rows.values()} == {1}

            published = [
                events_pb2.LedgerEntry.FromString(r.value)
                for r in await read_topic(kafka_bootstrap, topics.ledger_entries, 2)
            ]
            by_course = {e.credit_awarded.course_id: e for e in published}
            assert by_course["lab-1"].credit_awarded.hours_basis == common_pb2.HOURS_BASIS_NHEQF
            assert by_course["lab-1"].credit_awarded.experiential_hours == 30
            assert by_course["weld-1"].credit_awarded.level == common_pb2.NCRF_LEVEL_2_5
    finally:
        await connection.close()


def _json(value: object) -> dict[str, object]:
    loaded = json.loads(str(value))
    assert isinstance(loaded, dict)
    return loaded


async def test_entries_keep_the_version_that_decided_them_and_redecision_reuses_it(
    database_url: str,
) -> None:
    """The appender on PostgreSQL with two rules versions: version 2 (25 hours per credit)
    applies from ``switch``. A completion recorded without credit under version 1 and credited
    by a backdated approval once version 2 is in force gets version 1's credits; a new
    completion decided after the switch gets version 2's."""
    now = datetime.now(UTC)
    switch = now + timedelta(days=200)
    history = RulesHistory(
        (CreditRules(), CreditRules(version=2, effective_from=switch, ncrf_hours_per_credit=25))
    )
    learner = "424242424242"
    completed = now - timedelta(days=10)
    pool = await create_pool(database_url, max_size=2)
    try:
        async with pool.acquire() as connection:
            await catalog.add_issuer(connection, "rv", "Rules versions")
            await catalog.add_course(
                connection,
                Course("rv-pending", "rv", "Pending", Decimal(6), 90, CreditRecommendation.PENDING),
            )
            await catalog.add_course(
                connection,
                Course(
                    "rv-open",
                    "rv",
                    "Approved",
                    Decimal(6),
                    90,
                    CreditRecommendation.APPROVED,
                    category=CourseCategory.UNIVERSITY_COURSE,
                ),
            )

        offsets = iter(range(100))

        async def decide_at(instant: datetime, *requests: object) -> None:
            records = [
                SourceRecord(
                    "rv",
                    0,
                    next(offsets),
                    learner.encode(),
                    encode_completion_event(r),  # type: ignore[arg-type]
                )
                for r in requests
            ]
            appender = CreditLogAppender(pool, group_id="rv", rules=history, clock=lambda: instant)
            outcome = await appender.process(records)
            assert not outcome.rejected, outcome.rejected

        await decide_at(
            now,
            completion(
                learner, "rv-1", issuer_id="rv", course_id="rv-pending", completed_at=completed
            ),
        )
        async with pool.acquire() as connection:
            _, approval = await catalog.set_recommendation(
                connection,
                "rv-pending",
                CreditRecommendation.APPROVED,
                effective_at=completed - timedelta(days=1),
                reason="committee approved before the completion",
            )
        later = switch + timedelta(days=1)
        redecision = CreditRedecisionRequested(
            Envelope(
                redecision_event_id(approval.change_id, learner),
                CURRENT_SCHEMA_VERSION,
                later,
                "",
                learner,
            ),
            "rv-pending",
            approval.change_id,
        )
        await decide_at(
            later,
            redecision,
            completion(
                learner, "rv-2", issuer_id="rv", course_id="rv-open", completed_at=completed
            ),
        )
        async with pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT sequence, kind, rules_version, payload->>'credits' AS credits, "
                "payload->>'redecides_sequence' AS redecides FROM credit_log "
                "WHERE learner_id = $1 ORDER BY sequence",
                learner,
            )
        assert [
            (r["sequence"], r["kind"], r["rules_version"], r["credits"], r["redecides"])
            for r in rows
        ] == [
            (1, "recorded_without_credit", 1, "0", None),
            (2, "credit_awarded", 1, "3.0", "1"),  # version 1: 90 / 30
            (3, "credit_awarded", 2, "3.5", None),  # version 2: 90 / 25 = 3.6 -> 3.5
        ]
    finally:
        await pool.close()
