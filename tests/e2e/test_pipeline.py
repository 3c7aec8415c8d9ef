"""The four services as real processes on the real stack: from a partner's stream to a
registrar's transcript, with read-your-writes, pagination, as-of, a watch and consent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest

from learnerledger.v1 import (
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from learnerledger.wire.instants import to_timestamp
from tests.support.pipeline import LEARNER, Pipeline, completion

pytestmark = pytest.mark.e2e


async def test_partner_to_registrar_through_real_processes(pipeline: Pipeline) -> None:
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

        # A partner streams 12 completions (one of a pending course) and submits one more.
        async def stream() -> AsyncIterator[issuer_gateway_pb2.StreamCompletionsRequest]:
            for n in range(12):
                course = "db-201" if n == 11 else f"ml-{n}"
                yield issuer_gateway_pb2.StreamCompletionsRequest(completion=completion(n, course))

        acks = [ack async for ack in gateway.StreamCompletions(stream(), metadata=issuer)]
        assert [a.status for a in acks] == [issuer_gateway_pb2.ACCEPTANCE_STATUS_ACCEPTED] * 12
        await gateway.SubmitCompletion(
            issuer_gateway_pb2.SubmitCompletionRequest(completion=completion(12)), metadata=issuer
        )

        # Without consent the registrar is refused; the learner consents through the admin API.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await query.GetTranscript(
                transcript_query_pb2.GetTranscriptRequest(learner_id=LEARNER), metadata=reader
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await ledger_admin.GrantConsent(
            ledger_admin_pb2.GrantConsentRequest(learner_id=LEARNER, university_id="du"),
            metadata=admin,
        )

        # Read your writes: the partner's status names the ledger position; the registrar's
        # read waits for the projection to reach it.
        status = None
        for _ in range(100):
            status = await gateway.GetCompletionStatus(
                issuer_gateway_pb2.GetCompletionStatusRequest(completion_id="e2e-12"),
                metadata=issuer,
            )
            if status.state == issuer_gateway_pb2.COMPLETION_STATE_CREDITED:
                break
            await asyncio.sleep(0.2)
        assert status is not None
        assert status.state == issuer_gateway_pb2.COMPLETION_STATE_CREDITED
        assert status.credits == 3.0

        async def consent_applied() -> transcript_query_pb2.Transcript:
            for _ in range(100):
                try:
                    reply = await query.GetTranscript(
                        transcript_query_pb2.GetTranscriptRequest(
                            learner_id=LEARNER, min_position=status.ledger_position
                        ),
                        metadata=reader,
                        timeout=10,
                    )
                    return reply.transcript
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.PERMISSION_DENIED:
                        raise
                    await asyncio.sleep(0.2)  # the consent entry is still on its way
            raise AssertionError("consent never took effect")

        transcript = await consent_applied()
        assert transcript.ledger_position >= status.ledger_position
        assert transcript.active_credits == 12 * 3.0  # 12 awarded, 1 pending course without
        assert transcript.completions_without_credit == 1

        # Pagination over every credential.
        seen, token = [], ""
        while True:
            page = await query.ListCredentials(
                transcript_query_pb2.ListCredentialsRequest(
                    learner_id=LEARNER, page_size=5, page_token=token
                ),
                metadata=reader,
            )
            seen.extend(c.completion_id for c in page.credentials)
            token = page.next_page_token
            if not token:
                break
        assert set(seen) == {f"e2e-{n}" for n in [*range(11), 12]}
        assert len(seen) == 12  # no credential twice across pages

        # A revocation; as of before it, the credit was active.
        before_revocation = datetime.now(UTC)
        await asyncio.sleep(0.05)
        await gateway.RevokeCompletion(
            issuer_gateway_pb2.RevokeCompletionRequest(completion_id="e2e-0", reason="error"),
            metadata=issuer,
        )

        async def revoked() -> transcript_query_pb2.Transcript:
            for _ in range(100):
                reply = await query.GetTranscript(
                    transcript_query_pb2.GetTranscriptRequest(learner_id=LEARNER),
                    metadata=reader,
                )
                if reply.transcript.revoked_credits:
                    return reply.transcript
                await asyncio.sleep(0.2)
            raise AssertionError("the revocation never reached the transcript")

        now = await revoked()
        assert now.revoked_credits == 3.0
        assert now.active_credits == 11 * 3.0
        then = await query.GetTranscript(
            transcript_query_pb2.GetTranscriptRequest(
                learner_id=LEARNER, as_of=to_timestamp(before_revocation)
            ),
            metadata=reader,
        )
        assert then.transcript.revoked_credits == 0
        assert then.transcript.active_credits == 12 * 3.0

        # A watch sees a new credit arrive.
        watch = query.WatchTranscript(
            transcript_query_pb2.WatchTranscriptRequest(learner_id=LEARNER), metadata=reader
        )
        first = await watch.read()
        assert first.transcript.active_credits == 11 * 3.0
        await gateway.SubmitCompletion(
            issuer_gateway_pb2.SubmitCompletionRequest(completion=completion(13, "ml-11")),
            metadata=issuer,
        )
        async with asyncio.timeout(30):
            while True:
                update = await watch.read()
                if update.transcript.active_credits == 12 * 3.0:
                    break
        watch.cancel()

        # The learner withdraws consent: the registrar is refused again.
        await ledger_admin.RevokeConsent(
            ledger_admin_pb2.RevokeConsentRequest(learner_id=LEARNER, university_id="du"),
            metadata=admin,
        )

        async def refused_code() -> grpc.StatusCode:
            async with asyncio.timeout(30):
                while True:
                    try:
                        await query.GetTranscript(
                            transcript_query_pb2.GetTranscriptRequest(learner_id=LEARNER),
                            metadata=reader,
                        )
                    except grpc.aio.AioRpcError as error:
                        return error.code()
                    await asyncio.sleep(0.2)

        assert await refused_code() == grpc.StatusCode.PERMISSION_DENIED
