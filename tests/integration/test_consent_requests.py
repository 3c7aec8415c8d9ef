"""Consent requests through the admin API: a grant and a revocation sent with the same request id
are two requests (the first is recorded, the second refused as a conflict, never dropped as a
duplicate), and a retry of the same request is one event."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2

from learnerledger.postgres import catalog
from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import ledger_admin_pb2, ledger_admin_pb2_grpc
from tests.support.ledger import eventually, running_ledger
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

LEARNER = "823456789012"


async def test_grant_then_revoke_with_the_same_request_id_is_a_conflict_not_a_silent_no_op(
    kafka_bootstrap: str, database_url: str, topics
) -> None:  # type: ignore[no-untyped-def]
    connection = await asyncpg.connect(database_url)
    _, admin_token = await catalog.issue_token(connection, catalog.PrincipalKind.ADMIN, "ops")
    admin = (("authorization", f"Bearer {admin_token}"),)
    port = free_port()
    try:
        async with (
            running_ledger(kafka_bootstrap, database_url, topics, grpc_port=port),
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            await channel.channel_ready()
            stub = ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel)
            await stub.CreateUniversity(
                ledger_admin_pb2.CreateUniversityRequest(
                    university=ledger_admin_pb2.University(university_id="iitb")
                ),
                metadata=admin,
            )
            grant = ledger_admin_pb2.GrantConsentRequest(
                learner_id=LEARNER, university_id="iitb", request_id="req-7"
            )
            granted = await stub.GrantConsent(grant, metadata=admin)
            retried = await stub.GrantConsent(grant, metadata=admin)
            assert retried.event_id == granted.event_id  # a retry is the same event

            with pytest.raises(grpc.aio.AioRpcError) as conflict:
                await stub.RevokeConsent(
                    ledger_admin_pb2.RevokeConsentRequest(
                        learner_id=LEARNER, university_id="iitb", request_id="req-7"
                    ),
                    metadata=admin,
                )
            assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS
            (info,) = [
                d
                for d in decode_details(conflict.value.trailing_metadata())
                if isinstance(d, error_details_pb2.ErrorInfo)
            ]
            assert info.reason == "REQUEST_ID_CONFLICT"

            # With its own request id the revocation is a separate event and takes effect.
            revoked = await stub.RevokeConsent(
                ledger_admin_pb2.RevokeConsentRequest(
                    learner_id=LEARNER, university_id="iitb", request_id="req-8"
                ),
                metadata=admin,
            )
            assert revoked.event_id != granted.event_id

            async def both_recorded() -> bool:
                kinds = await connection.fetch(
                    "SELECT kind FROM credit_log WHERE learner_id = $1 ORDER BY sequence",
                    LEARNER,
                )
                return [r["kind"] for r in kinds] == ["consent_granted", "consent_revoked"]

            await eventually(both_recorded, what="the grant and the revocation")
    finally:
        await connection.close()
