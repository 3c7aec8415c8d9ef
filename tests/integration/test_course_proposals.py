"""Issuers propose their own courses through the gateway: pending until an admin
approves; on the real gateway (role ll_gateway), ledger and admin API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2

from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import (
    common_pb2,
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
)
from tests.support.gateway import auth, completion, running_gateway
from tests.support.ledger import eventually, running_ledger, seed_catalog
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

pb = issuer_gateway_pb2
LEARNER = "938000000001"
COMPLETED = datetime(2026, 3, 1, 12, tzinfo=UTC)  # test_gateway.completion's completed_at


def _course(course_id: str, **fields: Any) -> common_pb2.Course:
    return common_pb2.Course(
        course_id=course_id,
        title="Applied statistics",
        level=common_pb2.NCRF_LEVEL_6,
        notional_hours=90,
        skills=["regression", "sampling"],
        **fields,
    )


def _reason(error: grpc.aio.AioRpcError) -> str:
    (info,) = [
        d
        for d in decode_details(error.trailing_metadata())
        if isinstance(d, error_details_pb2.ErrorInfo)
    ]
    return str(info.reason)


async def test_an_issuer_proposes_a_course_an_admin_approves_and_its_completions_earn_credit(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    await seed_catalog(database_url)
    connection = await asyncpg.connect(database_url)
    _, swayam = await catalog.issue_token(connection, PrincipalKind.ISSUER, "swayam")
    _, admin_token = await catalog.issue_token(connection, PrincipalKind.ADMIN, "ops")
    port = free_port()
    try:
        async with (
            running_ledger(kafka_bootstrap, database_url, topics, grpc_port=port),
            running_gateway(kafka_bootstrap, database_url, topics) as (_, channel),
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as admin_channel,
        ):
            gateway = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
            admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(admin_channel)
            md = auth(swayam)
            admin_md = auth(admin_token)

            # Proposed with the issuer token: in the caller's catalog, PENDING whatever it asks.
            proposed = await gateway.ProposeCourse(
                pb.ProposeCourseRequest(
                    course=_course(
                        "sw-stats-1",
                        credit_recommendation=common_pb2.CREDIT_RECOMMENDATION_APPROVED,
                    )
                ),
                metadata=md,
            )
            assert proposed.course.issuer_id == "swayam"
            assert proposed.course.credit_recommendation == (
                common_pb2.CREDIT_RECOMMENDATION_PENDING
            )
            assert list(proposed.course.skills) == ["regression", "sampling"]
            stored = await connection.fetchrow(
                "SELECT issuer_id, credit_recommendation FROM courses WHERE course_id = $1",
                "sw-stats-1",
            )
            assert (stored["issuer_id"], stored["credit_recommendation"]) == ("swayam", "pending")

            # A proposal declares its hours per component and basis like an admin's course.
            lab = await gateway.ProposeCourse(
                pb.ProposeCourseRequest(
                    course=_course(
                        "sw-lab-1",
                        hours_basis=common_pb2.HOURS_BASIS_NHEQF,
                        theory_hours=30,
                        practical_hours=30,
                        experiential_hours=30,
                    )
                ),
                metadata=md,
            )
            assert (lab.course.hours_basis, lab.course.practical_hours) == (
                common_pb2.HOURS_BASIS_NHEQF,
                30,
            )
            assert (
                await connection.fetchval(
                    "SELECT hours_basis FROM courses WHERE course_id = 'sw-lab-1'"
                )
                == "nheqf"
            )

            # Refusals: another issuer's catalog, a taken id, a version of another's course.
            with pytest.raises(grpc.aio.AioRpcError) as foreign:
                await gateway.ProposeCourse(
                    pb.ProposeCourseRequest(course=_course("sw-x", issuer_id="nptel")), metadata=md
                )
            assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert _reason(foreign.value) == "FOREIGN_ISSUER"
            with pytest.raises(grpc.aio.AioRpcError) as taken:
                await gateway.ProposeCourse(
                    pb.ProposeCourseRequest(course=_course("os-301")), metadata=md
                )
            assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
            assert _reason(taken.value) == "COURSE_ALREADY_EXISTS"
            with pytest.raises(grpc.aio.AioRpcError) as versioned:
                await gateway.ProposeCourse(
                    pb.ProposeCourseRequest(
                        course=_course("sw-os-2", counts_as_course_id="os-301")
                    ),
                    metadata=md,
                )
            assert versioned.value.code() == grpc.StatusCode.INVALID_ARGUMENT

            # Pending: a completion is recorded without credit (accepted at once: no stale
            # cache of the unknown course id).
            await gateway.SubmitCompletion(
                pb.SubmitCompletionRequest(
                    completion=completion("st-1", learner_id=LEARNER, course_id="sw-stats-1")
                ),
                metadata=md,
            )

            async def status() -> pb.GetCompletionStatusResponse:
                reply: pb.GetCompletionStatusResponse = await gateway.GetCompletionStatus(
                    pb.GetCompletionStatusRequest(completion_id="st-1"), metadata=md
                )
                return reply

            async def decided() -> bool:
                return (await status()).state != pb.COMPLETION_STATE_ACCEPTED

            await eventually(decided, what="the ledger to decide st-1")
            pending = await status()
            assert pending.state == pb.COMPLETION_STATE_RECORDED_WITHOUT_CREDIT
            assert pending.reason == "course_not_approved"

            # The issuer cannot approve its own course; an admin approves it, backdated.
            with pytest.raises(grpc.aio.AioRpcError) as self_approval:
                await admin.ApproveCourse(
                    ledger_admin_pb2.ApproveCourseRequest(course_id="sw-stats-1"), metadata=md
                )
            assert self_approval.value.code() == grpc.StatusCode.PERMISSION_DENIED
            approval = ledger_admin_pb2.ApproveCourseRequest(
                course_id="sw-stats-1", reason="approved by the board, from the launch"
            )
            approval.effective_at.FromDatetime(COMPLETED - timedelta(days=30))
            approved = await admin.ApproveCourse(approval, metadata=admin_md)
            assert approved.course.recommendation_reason == (
                "approved by the board, from the launch"
            )

            async def credited() -> bool:
                return (await status()).state == pb.COMPLETION_STATE_CREDITED

            await eventually(credited, what="st-1 credited after the backdated approval")

        # The gateway's role may insert only a pending course.
        await connection.execute('SET ROLE "ll_gateway"')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(
                "INSERT INTO courses (course_id, issuer_id, title, ncrf_level, notional_hours, "
                "credit_recommendation) VALUES ('sw-sneaky', 'swayam', 'x', 6, 90, 'approved')"
            )
        await connection.execute("RESET ROLE")
    finally:
        await connection.close()
