"""Both times in reads through the real services: GetTranscript and ListCredentials
with `as_of` (what the learner held then) and `known_at` (what the ledger had recorded then),
credits_redeemed entries included."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import grpc
import pytest

from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.domain.events import Result
from learnerledger.postgres import catalog
from learnerledger.v1 import common_pb2, events_pb2, redemption_pb2, transcript_query_pb2_grpc
from learnerledger.v1 import transcript_query_pb2 as Q
from learnerledger.wire.instants import to_timestamp
from tests.support.ledger import (
    COMPLETED,
    completion,
    eventually,
    produce,
    revocation,
    running_ledger,
    seed_catalog,
)
from tests.support.projector import projected, running_projector
from tests.support.redemption import (
    create_programme,
    credited,
    decided,
    query_address,
    stack,
    violations,
)

pytestmark = pytest.mark.integration

LEARNER = "936000000001"


async def test_transcript_and_credentials_in_both_times_with_a_redemption(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    async with (
        stack(kafka_bootstrap, database_url, topics) as s,
        query_address(database_url) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(channel)
        await create_programme(s, "du-times", "du", 40, s.du)
        # Completed on COMPLETED (2026-03-01), recorded now; consent is sequence 3.
        seq = await credited(s, LEARNER, ["uc-1", "uc-2"], ["du"])
        await s.stub.RedeemCredits(
            redemption_pb2.RedeemCreditsRequest(
                redemption_id="du-t1",
                learner_id=LEARNER,
                programme_id="du-times",
                credential_sequences=[seq["uc-1"]],
            ),
            metadata=s.du,
        )
        await decided(s, "du-t1", s.du)
        await produce(s.bootstrap, s.topic, [revocation(LEARNER, f"{LEARNER}-uc-2")])

        async def revoked() -> bool:
            return bool(
                await s.db.fetchval(
                    "SELECT count(*) FROM credit_log WHERE learner_id = $1 "
                    "AND kind = 'credit_revoked'",
                    LEARNER,
                )
            )

        await eventually(revoked, what="the revocation recorded")
        recorded = {
            r["kind"]: r["recorded_at"]
            for r in await s.db.fetch(
                "SELECT kind, recorded_at FROM credit_log WHERE learner_id = $1", LEARNER
            )
        }
        redeemed_at = recorded["credits_redeemed"]
        revoked_at = recorded["credit_revoked"]
        assert COMPLETED < recorded["credit_awarded"] <= redeemed_at < revoked_at

        async def transcript(as_of: datetime | None, known_at: datetime | None) -> Q.Transcript:
            request = Q.GetTranscriptRequest(learner_id=LEARNER)
            if as_of is not None:
                request.as_of.CopyFrom(to_timestamp(as_of))
            if known_at is not None:
                request.known_at.CopyFrom(to_timestamp(known_at))
            return (await query.GetTranscript(request, metadata=s.du)).transcript

        def statuses(t: Q.Transcript) -> dict[int, int]:
            return {c.sequence: c.status for c in t.credentials}

        # as_of the day after completing, known now: both credits held, nothing redeemed or
        # revoked yet (before this change: empty, as_of filtered on recorded_at).
        day_after = COMPLETED + timedelta(days=1)
        held = await transcript(day_after, None)
        assert statuses(held) == {
            seq["uc-1"]: Q.CREDENTIAL_STATUS_ACTIVE,
            seq["uc-2"]: Q.CREDENTIAL_STATUS_ACTIVE,
        }
        assert (held.active_credits, held.redeemed_credits, held.revoked_credits) == (6, 0, 0)
        assert held.as_of == to_timestamp(day_after)
        assert held.known_at.ToDatetime() > revoked_at.replace(tzinfo=None)
        assert held.last_sequence == 5
        assert not any(c.HasField("redemption") for c in held.credentials)
        assert {c.score for c in held.credentials} == {75.0}  # as the issuer reported it

        # known_at the day after completing: the ledger had recorded nothing then.
        unknown = await transcript(None, day_after)
        assert (list(unknown.credentials), unknown.last_sequence) == ([], 0)
        assert unknown.as_of == unknown.known_at == to_timestamp(day_after)

        # Both between the redemption and the revocation: uc-1 redeemed, uc-2 active.
        between = redeemed_at + (revoked_at - redeemed_at) / 2
        middle = await transcript(between, between)
        assert statuses(middle) == {
            seq["uc-1"]: Q.CREDENTIAL_STATUS_REDEEMED,
            seq["uc-2"]: Q.CREDENTIAL_STATUS_ACTIVE,
        }
        assert middle.last_sequence == 4
        assert middle.redeemed_credits == 3.0
        (shown,) = [c for c in middle.credentials if c.sequence == seq["uc-1"]]
        assert shown.redemption.redemption_id == "du-t1"
        assert not shown.redemption.revoked_after_redemption
        # Held as of then, as known now: the later revocation is not yet in effect.
        known_now = await transcript(between, None)
        assert statuses(known_now) == statuses(middle)
        assert known_now.last_sequence == 5
        # As of now (the log's fold; the read model, without a projector here, is not read).
        now = await transcript(datetime.now(UTC), None)
        assert statuses(now) == {
            seq["uc-1"]: Q.CREDENTIAL_STATUS_REDEEMED,
            seq["uc-2"]: Q.CREDENTIAL_STATUS_REVOKED,
        }

        # ListCredentials: the same reads, filtered and paged; a token pages only its read.
        async def listed(filter_text: str, **times: datetime) -> list[Q.ListCredentialsResponse]:
            pages = []
            token = ""
            while True:
                request = Q.ListCredentialsRequest(
                    learner_id=LEARNER, filter=filter_text, page_size=1, page_token=token
                )
                for name, value in times.items():
                    getattr(request, name).CopyFrom(to_timestamp(value))
                pages.append(await query.ListCredentials(request, metadata=s.du))
                token = pages[-1].next_page_token
                if not token:
                    return pages

        active_then = await listed('status = "ACTIVE"', as_of=day_after)
        assert [c.sequence for p in active_then for c in p.credentials] == [
            seq["uc-1"],
            seq["uc-2"],
        ]
        assert {p.total_size for p in active_then} == {2}
        redeemed_between = await listed('status = "REDEEMED"', as_of=between, known_at=between)
        assert [c.sequence for p in redeemed_between for c in p.credentials] == [seq["uc-1"]]
        assert await listed("", known_at=day_after) == [Q.ListCredentialsResponse()]
        first = active_then[0]
        other = Q.ListCredentialsRequest(
            learner_id=LEARNER,
            filter='status = "ACTIVE"',
            page_size=1,
            page_token=first.next_page_token,
        )
        other.as_of.CopyFrom(to_timestamp(between))
        with pytest.raises(grpc.aio.AioRpcError) as other_read:
            await query.ListCredentials(other, metadata=s.du)
        assert violations(other_read.value) == ["page_token"]
        out_of_range_request = Q.ListCredentialsRequest(learner_id=LEARNER)
        out_of_range_request.known_at.seconds = -70_000_000_000
        with pytest.raises(grpc.aio.AioRpcError) as out_of_range:
            await query.ListCredentials(out_of_range_request, metadata=s.du)
        assert violations(out_of_range.value) == ["known_at"]


async def test_transcript_shows_course_details_and_lists_completions_without_credit(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    """Through the ledger, the projector (read model) and the query service: a credential's
    title, hours, basis, grade, score, evidence and skills; failed and pending completions."""
    learner = "937000000001"
    await seed_catalog(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        with contextlib.suppress(catalog.AlreadyExists):
            await catalog.add_course(
                connection,
                Course("ds-401", "swayam", "Data science", Decimal(6), 120,
                       CreditRecommendation.APPROVED, skills=("python", "statistics")),
            )  # fmt: skip
        _, admin = await catalog.issue_token(connection, catalog.PrincipalKind.ADMIN, "ops")
    finally:
        await connection.close()
    graded = replace(
        completion(learner, "d-1", course_id="ds-401"),
        score=None,  # an issuer gives a grade or a score (Completion.assessment)
        grade="A+",
        evidence_url="https://swayam.example/certificates/d-1",
    )
    await produce(
        kafka_bootstrap,
        topics.completions,
        [
            graded,
            completion(learner, "d-2", course_id="ml-101", result=Result.FAIL),
            completion(learner, "d-3", course_id="db-201"),  # db-201 is pending
        ],
    )
    async with (
        running_ledger(kafka_bootstrap, database_url, topics),
        running_projector(
            kafka_bootstrap, database_url, topics.ledger_entries, f"p-{topics.ledger_entries}"
        ),
        query_address(database_url) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(channel)
        metadata = (("authorization", f"Bearer {admin}"),)

        async def applied() -> bool:
            return await projected(database_url, [learner]) == {learner: 3}

        await eventually(applied, what="the learner's three entries in the read model")
        now = (
            await query.GetTranscript(Q.GetTranscriptRequest(learner_id=learner), metadata=metadata)
        ).transcript
        as_of = Q.GetTranscriptRequest(learner_id=learner)
        as_of.as_of.CopyFrom(to_timestamp(datetime.now(UTC)))
        folded = (await query.GetTranscript(as_of, metadata=metadata)).transcript
        listed = (
            await query.ListCredentials(
                Q.ListCredentialsRequest(learner_id=learner), metadata=metadata
            )
        ).credentials
        for credential in (now.credentials[0], folded.credentials[0], listed[0]):
            assert credential.course_title == "Data science"
            assert list(credential.skills) == ["python", "statistics"]
            assert credential.notional_hours == 120
            assert credential.hours_basis == common_pb2.HOURS_BASIS_NCRF
            assert credential.grade == "A+"
            assert not credential.HasField("score")
            assert credential.evidence_url == "https://swayam.example/certificates/d-1"
        for transcript in (now, folded):  # the read model and the log's fold agree
            assert transcript.completions_without_credit == 2
            assert [
                (u.completion_id, u.course_title, u.result, u.no_credit_reason)
                for u in transcript.uncredited_completions
            ] == [
                ("d-2", "Machine learning", common_pb2.COMPLETION_RESULT_FAIL,
                 events_pb2.NO_CREDIT_REASON_RESULT_FAIL),
                ("d-3", "Databases", common_pb2.COMPLETION_RESULT_PASS,
                 events_pb2.NO_CREDIT_REASON_COURSE_NOT_APPROVED),
            ]  # fmt: skip
            assert [u.sequence for u in transcript.uncredited_completions] == [2, 3]
