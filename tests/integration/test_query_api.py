"""TranscriptQueryService over gRPC on real Kafka and PostgreSQL (ledger, projector in-process)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
import pytest

from learnerledger.v1 import transcript_query_pb2 as pb
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    revocation,
    running_ledger,
    seed_courses,
)
from tests.support.ledger import seed_catalog as seed
from tests.support.projector import log_heads, projected, running_projector
from tests.support.query import bearer, running_query, tokens

pytestmark = pytest.mark.integration

DIANA, EVE = "511111111111", "522222222222"


async def test_universities_read_consented_transcripts_over_grpc(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    await seed(database_url)
    await seed_courses(database_url, [f"q-course-{i}" for i in range(1, 7)])
    university, admin = await tokens(database_url)
    await produce(
        kafka_bootstrap,
        topics.completions,
        [consent(DIANA)]
        + [completion(DIANA, f"q-{i}", course_id=f"q-course-{i}") for i in range(1, 6)]
        + [completion(EVE, "q-e1")],
    )
    async with (
        running_ledger(kafka_bootstrap, database_url, topics),
        running_projector(
            kafka_bootstrap, database_url, topics.ledger_entries, f"p-{topics.ledger_entries}"
        ),
        running_query(database_url) as stub,
    ):

        async def projected_to(expected: dict[str, int]) -> bool:
            return await projected(database_url, list(expected)) == expected

        await eventually(lambda: projected_to({DIANA: 6, EVE: 1}), what="projection")

        # Consent stands: the transcript; none: PERMISSION_DENIED; no token: UNAUTHENTICATED.
        reply = await stub.GetTranscript(
            pb.GetTranscriptRequest(learner_id=DIANA), metadata=bearer(university)
        )
        assert reply.transcript.active_credits == 15.0
        assert len(reply.transcript.credentials) == 5
        assert reply.transcript.last_sequence == 6
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.GetTranscript(
                pb.GetTranscriptRequest(learner_id=EVE), metadata=bearer(university)
            )
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stub.GetTranscript(pb.GetTranscriptRequest(learner_id=EVE))
        assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            await stub.GetTranscript(
                pb.GetTranscriptRequest(learner_id="12ab"), metadata=bearer(admin)
            )
        assert malformed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        eve = await stub.GetTranscript(
            pb.GetTranscriptRequest(learner_id=EVE), metadata=bearer(admin)
        )
        assert eve.transcript.active_credits == 3.0

        # Pagination: 5 credentials in pages of 2, tokens bound to the filter.
        seen: list[int] = []
        token = ""
        while True:
            page = await stub.ListCredentials(
                pb.ListCredentialsRequest(
                    learner_id=DIANA, page_size=2, page_token=token, filter='status = "ACTIVE"'
                ),
                metadata=bearer(university),
            )
            assert page.total_size == 5
            seen += [c.sequence for c in page.credentials]
            token = page.next_page_token
            if not token:
                break
        assert seen == [2, 3, 4, 5, 6]
        with pytest.raises(grpc.aio.AioRpcError) as bad_filter:
            await stub.ListCredentials(
                pb.ListCredentialsRequest(learner_id=DIANA, filter="grade = A"),
                metadata=bearer(university),
            )
        assert bad_filter.value.code() is grpc.StatusCode.INVALID_ARGUMENT

        # A watch sees the revocation arrive; as_of before it shows the credit active.
        watch = stub.WatchTranscript(
            pb.WatchTranscriptRequest(learner_id=DIANA), metadata=bearer(university), timeout=60
        )
        first = await watch.read()
        assert first.applied_sequence == 6
        before_revocation = datetime.now(UTC)
        await asyncio.sleep(0.05)
        await produce(
            kafka_bootstrap,
            topics.completions,
            [revocation(DIANA, "q-1"), completion(DIANA, "q-6", course_id="q-course-6")],
        )
        update = await watch.read()
        assert update.applied_sequence == 7
        assert update.transcript.revoked_credits == 3.0
        update = await watch.read()
        assert update.applied_sequence == 8
        assert update.transcript.active_credits == 15.0
        watch.cancel()

        # known_at: what the ledger had recorded then (q-6 not yet, the revocation not yet).
        then = pb.GetTranscriptRequest(learner_id=DIANA)
        then.known_at.FromDatetime(before_revocation)
        old = await stub.GetTranscript(then, metadata=bearer(university))
        assert old.transcript.credentials[0].status == pb.CREDENTIAL_STATUS_ACTIVE
        assert old.transcript.last_sequence == 6
        assert len(old.transcript.credentials) == 5
        assert old.transcript.as_of == old.transcript.known_at
        # as_of: what Diana held then, as known now: q-6 was completed before (recorded after),
        # and the revocation was recorded after.
        held = pb.GetTranscriptRequest(learner_id=DIANA)
        held.as_of.FromDatetime(before_revocation)
        then_now = await stub.GetTranscript(held, metadata=bearer(university))
        assert then_now.transcript.last_sequence == 8
        assert len(then_now.transcript.credentials) == 6
        assert then_now.transcript.active_credits == 18.0
        assert then_now.transcript.credentials[0].revoked_by_sequence == 0

        # min_position: waits for the projection of the learner's entry at that position.
        head = await log_heads(database_url, [DIANA])
        assert head[DIANA] == 8
        connection = await asyncpg.connect(database_url)
        try:
            position = await connection.fetchval(
                "SELECT position FROM credit_log WHERE learner_id = $1 AND sequence = 8", DIANA
            )
        finally:
            await connection.close()
        fresh = await stub.GetTranscript(
            pb.GetTranscriptRequest(learner_id=DIANA, min_position=position),
            metadata=bearer(university),
            timeout=10,
        )
        assert fresh.transcript.last_sequence == 8

        summary = await stub.GetCreditSummary(
            pb.GetCreditSummaryRequest(learner_id=DIANA), metadata=bearer(university)
        )
        assert summary.summary.total_active_credits == 15.0

        proof = await stub.VerifyEntry(
            pb.VerifyEntryRequest(learner_id=DIANA, sequence=7), metadata=bearer(university)
        )
        assert proof.chain_valid
        assert proof.entry.sequence == 7
