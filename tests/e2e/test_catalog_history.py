"""Through the real services: completions are decided on the catalog as it was at completed_at,
a backdated approval credits completions already recorded without credit, exactly once, and a
learner earns a course's credit once."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest

from learnerledger.domain.events import (
    CURRENT_SCHEMA_VERSION,
    CreditRedecisionRequested,
    Envelope,
    redecision_event_id,
)
from learnerledger.v1 import (
    common_pb2,
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from learnerledger.wire.instants import to_timestamp
from tests.support.ledger import eventually, produce
from tests.support.pipeline import LEARNER, Pipeline, completion

pytestmark = pytest.mark.e2e

OTHER_LEARNER = "987654321013"
EXPIRED_LEARNER = "987654321014"
State = issuer_gateway_pb2.CompletionState.ValueType
Metadata = tuple[tuple[str, str], ...]


async def status_of(
    gateway: issuer_gateway_pb2_grpc.IssuerGatewayServiceStub,
    issuer: Metadata,
    completion_id: str,
) -> issuer_gateway_pb2.GetCompletionStatusResponse:
    return await gateway.GetCompletionStatus(
        issuer_gateway_pb2.GetCompletionStatusRequest(completion_id=completion_id),
        metadata=issuer,
    )


async def reach_state(
    gateway: issuer_gateway_pb2_grpc.IssuerGatewayServiceStub,
    issuer: Metadata,
    completion_id: str,
    state: State,
) -> None:
    async def check() -> bool:
        try:
            return (await status_of(gateway, issuer, completion_id)).state == state
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return False

    await eventually(check, what=f"{completion_id} to reach state {state}")


async def test_backdated_approval_and_withdrawal_decide_on_the_state_at_completed_at(
    pipeline: Pipeline,
    database_url: str,
    kafka_bootstrap: str,
    topics,  # type: ignore[no-untyped-def]
) -> None:
    issuer = (("authorization", f"Bearer {pipeline.issuer_token}"),)
    admin = (("authorization", f"Bearer {pipeline.admin_token}"),)
    async with (
        grpc.aio.insecure_channel(pipeline.gateway) as gateway_channel,
        grpc.aio.insecure_channel(pipeline.admin) as admin_channel,
    ):
        gateway = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(gateway_channel)
        ledger_admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(admin_channel)

        state_of = functools.partial(status_of, gateway, issuer)
        reaches = functools.partial(reach_state, gateway, issuer)

        async def submit(n: int, days_ago: int, learner_id: str = LEARNER) -> None:
            item = completion(n, "db-201", days_ago=days_ago)
            item.learner_id = learner_id
            await gateway.SubmitCompletion(
                issuer_gateway_pb2.SubmitCompletionRequest(completion=item), metadata=issuer
            )

        # db-201 is pending: two completions are recorded without credit.
        await submit(1, days_ago=30)  # will fall inside the backdated approval
        await submit(2, days_ago=400)  # before it
        for n in (1, 2):
            await reaches(f"e2e-{n}", issuer_gateway_pb2.COMPLETION_STATE_RECORDED_WITHOUT_CREDIT)
        assert (await state_of("e2e-1")).reason == "course_not_approved"

        # Backdating needs a reason.
        sixty_days_ago = to_timestamp(datetime.now(UTC) - timedelta(days=60))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ledger_admin.ApproveCourse(
                ledger_admin_pb2.ApproveCourseRequest(
                    course_id="db-201", effective_at=sixty_days_ago
                ),
                metadata=admin,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # The approval, effective 60 days ago: e2e-1 earns its credit by a new entry.
        await ledger_admin.ApproveCourse(
            ledger_admin_pb2.ApproveCourseRequest(
                course_id="db-201",
                effective_at=sixty_days_ago,
                reason="UGC committee approved the recommendation on that day",
            ),
            metadata=admin,
        )
        await reaches("e2e-1", issuer_gateway_pb2.COMPLETION_STATE_CREDITED)
        assert (await state_of("e2e-1")).credits == 2.0
        assert (await state_of("e2e-2")).state == (
            issuer_gateway_pb2.COMPLETION_STATE_RECORDED_WITHOUT_CREDIT
        )

        # Withdrawn as of 5 days ago: a completion made while approved, submitted after, still
        # earns credit; one made after the withdrawal does not; e2e-1 keeps its credit.
        await ledger_admin.WithdrawCourse(
            ledger_admin_pb2.WithdrawCourseRequest(
                course_id="db-201",
                reason="syllabus changed",
                effective_at=to_timestamp(datetime.now(UTC) - timedelta(days=5)),
            ),
            metadata=admin,
        )
        await submit(3, days_ago=10, learner_id=OTHER_LEARNER)  # LEARNER holds db-201 already
        await reaches("e2e-3", issuer_gateway_pb2.COMPLETION_STATE_CREDITED)

        connection = await asyncpg.connect(database_url)
        try:
            history = await connection.fetch(
                "SELECT change_id, state, reason FROM course_recommendation_changes "
                "WHERE course_id = 'db-201' ORDER BY recorded_at"
            )
            assert [(r["state"], r["reason"]) for r in history] == [
                ("approved", "UGC committee approved the recommendation on that day"),
                ("withdrawn", "syllabus changed"),
            ]
            approval_id: uuid.UUID = history[0]["change_id"]

            # The same re-decision request again (a crash after publishing, before the fan-out
            # was marked done): nothing is credited twice.
            envelope = Envelope(
                redecision_event_id(approval_id, LEARNER),
                CURRENT_SCHEMA_VERSION,
                datetime.now(UTC),
                "",
                LEARNER,
            )
            await produce(
                kafka_bootstrap,
                topics.completions,
                [CreditRedecisionRequested(envelope, "db-201", approval_id)],
            )
            await submit(4, days_ago=1)  # after the duplicate on the learner's partition
            await reaches("e2e-4", issuer_gateway_pb2.COMPLETION_STATE_RECORDED_WITHOUT_CREDIT)

            rows = await connection.fetch(
                "SELECT sequence, kind, payload FROM credit_log "
                "WHERE learner_id = $1 AND completion_id = 'e2e-1' ORDER BY sequence",
                LEARNER,
            )
        finally:
            await connection.close()
        original, redecided = rows  # exactly two entries: the original stays, one credit
        assert original["kind"] == "recorded_without_credit"
        assert redecided["kind"] == "credit_awarded"
        payload = json.loads(redecided["payload"])
        assert payload["redecides_sequence"] == original["sequence"]
        assert payload["approval_id"] == str(approval_id)
        assert (await state_of("e2e-4")).reason == "course_not_approved"
        assert (await state_of("e2e-1")).state == issuer_gateway_pb2.COMPLETION_STATE_CREDITED


async def test_a_course_is_credited_once_per_learner_across_versions(
    pipeline: Pipeline,
    database_url: str,
) -> None:
    issuer = (("authorization", f"Bearer {pipeline.issuer_token}"),)
    admin = (("authorization", f"Bearer {pipeline.admin_token}"),)
    async with (
        grpc.aio.insecure_channel(pipeline.gateway) as gateway_channel,
        grpc.aio.insecure_channel(pipeline.admin) as admin_channel,
    ):
        gateway = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(gateway_channel)
        ledger_admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(admin_channel)
        state_of = functools.partial(status_of, gateway, issuer)
        reaches = functools.partial(reach_state, gateway, issuer)
        # ml-101-v2 is a version of ml-101, approved since long before the completions.
        created = await ledger_admin.CreateCourse(
            ledger_admin_pb2.CreateCourseRequest(
                course=common_pb2.Course(
                    course_id="ml-101-v2",
                    issuer_id="swayam",
                    title="Machine learning (2026 edition)",
                    level=common_pb2.NCRF_LEVEL_5_5,
                    notional_hours=90,
                    counts_as_course_id="ml-101",
                )
            ),
            metadata=admin,
        )
        assert created.course.counts_as_course_id == "ml-101"
        await ledger_admin.ApproveCourse(
            ledger_admin_pb2.ApproveCourseRequest(
                course_id="ml-101-v2",
                effective_at=to_timestamp(datetime(2020, 1, 1, tzinfo=UTC)),
                reason="the edition inherits ml-101's recommendation",
            ),
            metadata=admin,
        )

        async def submit(n: int, course_id: str, *, passed: bool = True) -> None:
            item = completion(n, course_id, days_ago=40 - n)
            if not passed:
                item.result = common_pb2.COMPLETION_RESULT_FAIL
            await gateway.SubmitCompletion(
                issuer_gateway_pb2.SubmitCompletionRequest(completion=item), metadata=issuer
            )

        credited = issuer_gateway_pb2.COMPLETION_STATE_CREDITED
        without = issuer_gateway_pb2.COMPLETION_STATE_RECORDED_WITHOUT_CREDIT
        await submit(20, "ml-101")
        await reaches("e2e-20", credited)
        holder = (await state_of("e2e-20")).ledger_sequence
        for n, course_id in ((21, "ml-101"), (22, "ml-101-v2")):  # a repeat; another version
            await submit(n, course_id)
            await reaches(f"e2e-{n}", without)
            assert (await state_of(f"e2e-{n}")).reason == "already_credited"

        # A revoked credit is no longer held: the next pass earns it.
        await gateway.RevokeCompletion(
            issuer_gateway_pb2.RevokeCompletionRequest(completion_id="e2e-20", reason="error"),
            metadata=issuer,
        )
        await reaches("e2e-20", issuer_gateway_pb2.COMPLETION_STATE_REVOKED)
        await submit(23, "ml-101-v2")
        await reaches("e2e-23", credited)

        connection = await asyncpg.connect(database_url)
        try:
            payload = json.loads(
                await connection.fetchval(
                    "SELECT payload FROM credit_log WHERE learner_id = $1 AND completion_id = $2",
                    LEARNER,
                    "e2e-21",
                )
            )
        finally:
            await connection.close()
        assert payload["credited_sequence"] == holder


async def test_credit_older_than_its_validity_is_expired_from_the_start(
    pipeline: Pipeline,
) -> None:
    issuer = (("authorization", f"Bearer {pipeline.issuer_token}"),)
    reader = (("authorization", f"Bearer {pipeline.university_token}"),)
    admin = (("authorization", f"Bearer {pipeline.admin_token}"),)
    async with (
        grpc.aio.insecure_channel(pipeline.gateway) as gateway_channel,
        grpc.aio.insecure_channel(pipeline.query) as query_channel,
        grpc.aio.insecure_channel(pipeline.admin) as admin_channel,
    ):
        gateway = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(gateway_channel)
        query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(query_channel)
        ledger_admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(admin_channel)
        old = completion(30, "ml-101", days_ago=8 * 365)
        old.learner_id = EXPIRED_LEARNER
        await gateway.SubmitCompletion(
            issuer_gateway_pb2.SubmitCompletionRequest(completion=old), metadata=issuer
        )
        await reach_state(gateway, issuer, "e2e-30", issuer_gateway_pb2.COMPLETION_STATE_EXPIRED)
        status = await status_of(gateway, issuer, "e2e-30")
        completed_at = old.completed_at.ToDatetime(tzinfo=UTC)
        assert status.valid_until.ToDatetime(tzinfo=UTC) == completed_at.replace(
            year=completed_at.year + 7
        )
        assert status.credits == 3.0

        await ledger_admin.GrantConsent(
            ledger_admin_pb2.GrantConsentRequest(
                learner_id=EXPIRED_LEARNER, university_id="du", request_id="expired-1"
            ),
            metadata=admin,
        )

        async def transcript_shows_it() -> bool:
            try:
                reply = await query.GetTranscript(
                    transcript_query_pb2.GetTranscriptRequest(
                        learner_id=EXPIRED_LEARNER, min_position=status.ledger_position
                    ),
                    metadata=reader,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.PERMISSION_DENIED:
                    raise
                return False  # the consent is still on its way
            (credential,) = reply.transcript.credentials
            assert credential.status == transcript_query_pb2.CREDENTIAL_STATUS_EXPIRED
            return True

        await eventually(transcript_shows_it, what="the transcript to show the expired credit")
