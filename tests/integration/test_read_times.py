"""Both times in reads through the real services (issue 13): GetTranscript and ListCredentials
with `as_of` (what the learner held then) and `known_at` (what the ledger had recorded then),
credits_redeemed entries included (issue 14)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from learnerledger.kafka.codec import to_timestamp
from learnerledger.v1 import redemption_pb2, transcript_query_pb2_grpc
from learnerledger.v1 import transcript_query_pb2 as Q
from tests.integration.ledger_fixtures import COMPLETED, eventually, produce, revocation
from tests.integration.test_redemption import (
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
