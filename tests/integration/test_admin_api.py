"""LedgerAdminService over gRPC, served by the ledger process, on the real stack."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2

from learnerledger.postgres import catalog
from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import common_pb2, ledger_admin_pb2, ledger_admin_pb2_grpc
from tests.support.ledger import eventually, running_ledger
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

LEARNER = "812345678901"


async def test_admin_manages_catalog_consent_and_verifies(
    kafka_bootstrap: str, database_url: str, topics
) -> None:  # type: ignore[no-untyped-def]
    connection = await asyncpg.connect(database_url)
    _, admin_token = await catalog.issue_token(connection, catalog.PrincipalKind.ADMIN, "ops")
    port = free_port()
    admin = (("authorization", f"Bearer {admin_token}"),)
    try:
        async with (
            running_ledger(kafka_bootstrap, database_url, topics, grpc_port=port),
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            await channel.channel_ready()
            stub = ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel)
            await stub.CreateIssuer(
                ledger_admin_pb2.CreateIssuerRequest(
                    issuer=ledger_admin_pb2.Issuer(issuer_id="upgrad", display_name="upGrad")
                ),
                metadata=admin,
            )
            for n in range(3):
                created = await stub.CreateCourse(
                    ledger_admin_pb2.CreateCourseRequest(
                        course=common_pb2.Course(
                            course_id=f"up-{n}",
                            issuer_id="upgrad",
                            title=f"Course {n}",
                            level=common_pb2.NCRF_LEVEL_6,
                            notional_hours=60,
                        )
                    ),
                    metadata=admin,
                )
                assert (
                    created.course.credit_recommendation == common_pb2.CREDIT_RECOMMENDATION_PENDING
                )
            approved = await stub.ApproveCourse(
                ledger_admin_pb2.ApproveCourseRequest(course_id="up-1"), metadata=admin
            )
            assert (
                approved.course.credit_recommendation == common_pb2.CREDIT_RECOMMENDATION_APPROVED
            )

            first = await stub.ListCourses(
                ledger_admin_pb2.ListCoursesRequest(filter='issuer_id = "upgrad"', page_size=2),
                metadata=admin,
            )
            second = await stub.ListCourses(
                ledger_admin_pb2.ListCoursesRequest(
                    filter='issuer_id = "upgrad"', page_size=2, page_token=first.next_page_token
                ),
                metadata=admin,
            )
            assert [c.course_id for c in first.courses] == ["up-0", "up-1"]
            assert [c.course_id for c in second.courses] == ["up-2"]
            assert second.next_page_token == ""
            assert first.total_size == second.total_size == 3

            # The filters the proto documents; WithdrawCourse's reason is kept and shown.
            withdrawn = await stub.WithdrawCourse(
                ledger_admin_pb2.WithdrawCourseRequest(
                    course_id="up-2", reason="syllabus no longer meets NCrF"
                ),
                metadata=admin,
            )
            assert withdrawn.course.recommendation_reason == "syllabus no longer meets NCrF"
            for text, expected in (
                ('issuer_id = "upgrad" AND credit_recommendation = "APPROVED"', ["up-1"]),
                ('credit_recommendation = "PENDING" AND issuer_id = "upgrad"', ["up-0"]),
                ('issuer_id = "upgrad" AND credit_recommendation = "WITHDRAWN"', ["up-2"]),
                ('issuer_id = "upgrad" AND level = "6"', ["up-0", "up-1", "up-2"]),
                ('issuer_id = "upgrad" AND level = "7"', []),
            ):
                listed = await stub.ListCourses(
                    ledger_admin_pb2.ListCoursesRequest(filter=text), metadata=admin
                )
                assert [c.course_id for c in listed.courses] == expected, text
                assert listed.total_size == len(expected)
            (shown,) = (
                await stub.ListCourses(
                    ledger_admin_pb2.ListCoursesRequest(
                        filter='credit_recommendation = "WITHDRAWN" AND issuer_id = "upgrad"'
                    ),
                    metadata=admin,
                )
            ).courses
            assert shown.recommendation_reason == "syllabus no longer meets NCrF"
            stored = await connection.fetchval(
                "SELECT reason FROM course_recommendation_changes WHERE course_id = 'up-2'"
            )
            assert stored == "syllabus no longer meets NCrF"
            for bad in ('credit_recommendation = "MAYBE"', 'title = "x"', "level = 9"):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.ListCourses(
                        ledger_admin_pb2.ListCoursesRequest(filter=bad), metadata=admin
                    )
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad

            token = await stub.CreateIssuerToken(
                ledger_admin_pb2.CreateIssuerTokenRequest(issuer_id="upgrad"), metadata=admin
            )
            issuer = await catalog.authenticate(connection, token.token)
            assert issuer == catalog.Principal(catalog.PrincipalKind.ISSUER, "upgrad")

            await stub.CreateUniversity(
                ledger_admin_pb2.CreateUniversityRequest(
                    university=ledger_admin_pb2.University(university_id="iisc")
                ),
                metadata=admin,
            )
            granted = await stub.GrantConsent(
                ledger_admin_pb2.GrantConsentRequest(
                    learner_id=LEARNER, university_id="iisc", request_id="r-1"
                ),
                metadata=admin,
            )

            async def consent_recorded() -> bool:
                return bool(
                    await connection.fetchval(
                        "SELECT count(*) FROM credit_log WHERE learner_id = $1 "
                        "AND kind = 'consent_granted'",
                        LEARNER,
                    )
                )

            await eventually(consent_recorded, what="the consent entry")
            source = await connection.fetchval(
                "SELECT source_event_id::text FROM credit_log WHERE learner_id = $1", LEARNER
            )
            assert source == granted.event_id

            verified = await stub.VerifyLedger(
                ledger_admin_pb2.VerifyLedgerRequest(), metadata=admin
            )
            assert verified.ok
            assert verified.entries_checked >= 1

            with pytest.raises(grpc.aio.AioRpcError) as bad_level:
                await stub.CreateCourse(
                    ledger_admin_pb2.CreateCourseRequest(
                        course=common_pb2.Course(course_id="x", issuer_id="upgrad", title="X")
                    ),
                    metadata=admin,
                )
            assert bad_level.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            details = decode_details(bad_level.value.trailing_metadata())
            violations = next(
                d for d in details if isinstance(d, error_details_pb2.BadRequest)
            ).field_violations
            assert [v.field for v in violations] == ["course.level"]

            with pytest.raises(grpc.aio.AioRpcError) as duplicate:
                await stub.CreateIssuer(
                    ledger_admin_pb2.CreateIssuerRequest(
                        issuer=ledger_admin_pb2.Issuer(issuer_id="upgrad", display_name="x")
                    ),
                    metadata=admin,
                )
            assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS

            with pytest.raises(grpc.aio.AioRpcError) as anonymous:
                await stub.VerifyLedger(ledger_admin_pb2.VerifyLedgerRequest())
            assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

            with pytest.raises(grpc.aio.AioRpcError) as partner:
                await stub.VerifyLedger(
                    ledger_admin_pb2.VerifyLedgerRequest(),
                    metadata=(("authorization", f"Bearer {token.token}"),),
                )
            assert partner.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await connection.close()
