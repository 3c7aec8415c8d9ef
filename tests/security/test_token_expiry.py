"""API tokens expire: ``expire_time`` is stored, returned and enforced on every service.

An issuer token created (through LedgerAdminService) to expire in 2020 is refused by the gateway;
a university token and an admin token past their expiry are refused by the query service and the
admin API; a token that expires while servers hold it in their auth cache stops working at its
expiry, not when the cache entry ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import (
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from tests.support.authorization import DIANA, Stack, bearer
from tests.support.ledger import eventually

pytestmark = pytest.mark.integration

IN_2020 = datetime(2020, 6, 30, tzinfo=UTC)


def stamp(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def reasons(error: grpc.aio.AioRpcError) -> list[str]:
    return [
        d.reason
        for d in decode_details(error.trailing_metadata())
        if isinstance(d, error_details_pb2.ErrorInfo)
    ]


async def status_of(call: Any) -> grpc.aio.AioRpcError | None:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    return None


def assert_expired(error: grpc.aio.AioRpcError | None) -> None:
    assert error is not None, "the expired token was let through"
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED, error
    assert reasons(error) == ["TOKEN_EXPIRED"]
    assert "expired at 2020-06-30T00:00:00Z" in (error.details() or "")


async def test_expired_tokens_of_every_kind_are_unauthenticated(
    services: Stack, database_url: str
) -> None:
    admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(services.admin)
    created = await admin.CreateIssuerToken(
        ledger_admin_pb2.CreateIssuerTokenRequest(issuer_id="swayam", expire_time=stamp(IN_2020)),
        metadata=bearer(services.tokens["admin"]),
    )
    assert created.expire_time.ToDatetime(tzinfo=UTC) == IN_2020
    university = await admin.CreateUniversityToken(
        ledger_admin_pb2.CreateUniversityTokenRequest(
            university_id="du", expire_time=stamp(IN_2020)
        ),
        metadata=bearer(services.tokens["admin"]),
    )
    assert university.expire_time.ToDatetime(tzinfo=UTC) == IN_2020
    unlimited = await admin.CreateIssuerToken(
        ledger_admin_pb2.CreateIssuerTokenRequest(issuer_id="swayam"),
        metadata=bearer(services.tokens["admin"]),
    )
    assert not unlimited.HasField("expire_time")

    gateway = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(services.gateway)
    status = issuer_gateway_pb2.GetCompletionStatusRequest(completion_id="az-1")
    expired = bearer(created.token)
    assert_expired(await status_of(gateway.GetCompletionStatus(status, metadata=expired)))
    assert (
        await status_of(gateway.GetCompletionStatus(status, metadata=bearer(unlimited.token)))
        is None
    )

    query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(services.query)
    transcript = transcript_query_pb2.GetTranscriptRequest(learner_id=DIANA)
    assert_expired(
        await status_of(query.GetTranscript(transcript, metadata=bearer(university.token)))
    )

    connection = await asyncpg.connect(database_url)
    try:
        _, expired_admin = await catalog.issue_token(
            connection, PrincipalKind.ADMIN, "ops", expire_time=IN_2020
        )
    finally:
        await connection.close()
    listing = ledger_admin_pb2.ListCoursesRequest()
    assert_expired(await status_of(admin.ListCourses(listing, metadata=bearer(expired_admin))))


async def test_a_cached_token_stops_working_when_it_expires(services: Stack) -> None:
    """The gateway caches a token's principal for auth_cache_s (30 s by default); a token that
    expires two seconds after its first use must be refused from then on, cache or not."""
    expires = datetime.now(UTC) + timedelta(seconds=2)
    admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(services.admin)
    created = await admin.CreateIssuerToken(
        ledger_admin_pb2.CreateIssuerTokenRequest(issuer_id="swayam", expire_time=stamp(expires)),
        metadata=bearer(services.tokens["admin"]),
    )
    gateway = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(services.gateway)
    request = issuer_gateway_pb2.GetCompletionStatusRequest(completion_id="az-1")
    token = bearer(created.token)
    assert await status_of(gateway.GetCompletionStatus(request, metadata=token)) is None

    async def refused() -> bool:
        error = await status_of(gateway.GetCompletionStatus(request, metadata=token))
        return error is not None and error.code() is grpc.StatusCode.UNAUTHENTICATED

    await eventually(refused, timeout=15, what="the token to stop working at its expiry")
    assert datetime.now(UTC) >= expires


async def test_out_of_range_expire_time_is_invalid_argument(services: Stack) -> None:
    admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(services.admin)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await admin.CreateIssuerToken(
            ledger_admin_pb2.CreateIssuerTokenRequest(
                issuer_id="swayam", expire_time=Timestamp(seconds=2**62)
            ),
            metadata=bearer(services.tokens["admin"]),
        )
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [
        v.field
        for d in decode_details(failed.value.trailing_metadata())
        if isinstance(d, error_details_pb2.BadRequest)
        for v in d.field_violations
    ] == ["expire_time"]
