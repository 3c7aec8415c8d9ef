"""Redemption on the real stack: RedemptionService in the ledger process, requests on
Kafka keyed by the learner, decided by the ledger in order, appended to the hash-chained log."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.domain.transcript import CredentialStatus, TranscriptProjection
from learnerledger.ledger.verification import verify_ledger
from learnerledger.postgres import catalog, credit_log
from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import (
    transcript_query_pb2,
)
from learnerledger.wire.transcripts import state_to_transcript
from tests.support.ledger import (
    eventually,
    produce,
    revocation,
)
from tests.support.redemption import (
    OUT,
    R,
    create_programme,
    credited,
    decided,
    query_address,
    stack,
    violations,
)

pytestmark = pytest.mark.integration


def outcomes(redemption: R.Redemption) -> list[tuple[int, int]]:
    return [(line.sequence, line.outcome) for line in redemption.lines]


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    (info,) = [
        d for d in decode_details(error.trailing_metadata())
        if isinstance(d, error_details_pb2.ErrorInfo)
    ]  # fmt: skip
    return info


async def test_redeem_caps_retry_conflict_second_university_revocation_and_verify(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    learner = "931000000001"
    async with stack(kafka_bootstrap, database_url, topics) as s:
        # A 10-credit programme takes at most 4 SWAYAM credits: one 3-credit MOOC, not two.
        await create_programme(s, "du-bsc", "du", 10, s.du)
        await create_programme(s, "iitm-btech", "iitm", 20, s.admin)
        seq = await credited(s, learner, ["sw-1", "sw-2", "uc-1"], ["du", "iitm"])
        ask = R.RedeemCreditsRequest(
            redemption_id="du-2026-001",
            learner_id=learner,
            programme_id="du-bsc",
            credential_sequences=[seq["sw-1"], seq["sw-2"], seq["uc-1"]],
            allow_partial=True,
        )
        first = await s.stub.RedeemCredits(ask, metadata=s.du)
        assert first.redemption.state in (R.REDEMPTION_STATE_PENDING, R.REDEMPTION_STATE_REDEEMED)
        done = await decided(s, "du-2026-001", s.du)
        assert done.state == R.REDEMPTION_STATE_REDEEMED
        assert outcomes(done) == [
            (seq["sw-1"], OUT.REDEMPTION_OUTCOME_REDEEMED),
            (seq["sw-2"], OUT.REDEMPTION_OUTCOME_CAP_EXCEEDED),
            (seq["uc-1"], OUT.REDEMPTION_OUTCOME_REDEEMED),
        ]
        assert done.redeemed_credits == 6.0

        # A retry answers the first outcome and appends nothing; other content is a conflict.
        again = await s.stub.RedeemCredits(ask, metadata=s.du)
        assert again.redemption == done
        other = R.RedeemCreditsRequest()
        other.CopyFrom(ask)
        other.allow_partial = False
        with pytest.raises(grpc.aio.AioRpcError) as conflict:
            await s.stub.RedeemCredits(other, metadata=s.du)
        assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error_info(conflict.value).reason == "REDEMPTION_ID_CONFLICT"

        # A second university: the credit DU redeemed is ALREADY_REDEEMED; all or nothing
        # withholds the other, a partial request redeems it.
        await s.stub.RedeemCredits(
            R.RedeemCreditsRequest(
                redemption_id="iitm-1",
                learner_id=learner,
                programme_id="iitm-btech",
                credential_sequences=[seq["sw-1"], seq["sw-2"]],
            ),
            metadata=s.iitm,
        )
        refused = await decided(s, "iitm-1", s.iitm)
        assert refused.state == R.REDEMPTION_STATE_REFUSED
        assert outcomes(refused) == [
            (seq["sw-1"], OUT.REDEMPTION_OUTCOME_ALREADY_REDEEMED),
            (seq["sw-2"], OUT.REDEMPTION_OUTCOME_WITHHELD),
        ]
        await s.stub.RedeemCredits(
            R.RedeemCreditsRequest(
                redemption_id="iitm-2",
                learner_id=learner,
                programme_id="iitm-btech",
                all_eligible=True,
                allow_partial=True,
            ),
            metadata=s.iitm,
        )
        partial = await decided(s, "iitm-2", s.iitm)
        assert outcomes(partial) == [(seq["sw-2"], OUT.REDEMPTION_OUTCOME_REDEEMED)]

        kinds = Counter(
            r["kind"]
            for r in await s.db.fetch("SELECT kind FROM credit_log WHERE learner_id = $1", learner)
        )
        assert kinds["credits_redeemed"] == 2  # du-2026-001 once (the retry appended nothing)
        assert kinds["redemption_refused"] == 1

        # The issuer revokes a redeemed completion: recorded, the debit stays, and the
        # transcript says "revoked after redemption".
        await produce(s.bootstrap, s.topic, [revocation(learner, f"{learner}-sw-1")])

        async def revoked() -> bool:
            return bool(
                await s.db.fetchval(
                    "SELECT count(*) FROM credit_log WHERE learner_id = $1 "
                    "AND kind = 'credit_revoked'",
                    learner,
                )
            )

        await eventually(revoked, what="the revocation")
        assert (
            await s.db.fetchval(
                "SELECT university_id FROM redeemed_credentials "
                "WHERE learner_id = $1 AND credential_sequence = $2",
                learner,
                seq["sw-1"],
            )
            == "du"
        )
        entries = await credit_log.learner_entries(s.db, learner)
        state = TranscriptProjection.fold(learner, entries)
        now = datetime.now(UTC)
        swayam_1 = state.credentials[seq["sw-1"]]
        assert swayam_1.status_at(now) is CredentialStatus.REDEEMED
        assert swayam_1.revoked_after_redemption(now)
        transcript = state_to_transcript(state, now)
        shown = {c.sequence: c for c in transcript.credentials}
        assert shown[seq["sw-1"]].status == transcript_query_pb2.CREDENTIAL_STATUS_REDEEMED
        assert shown[seq["sw-1"]].redemption.university_id == "du"
        assert shown[seq["sw-1"]].redemption.revoked_after_redemption
        assert not shown[seq["uc-1"]].redemption.revoked_after_redemption
        assert shown[seq["sw-2"]].redemption.programme_id == "iitm-btech"
        assert transcript.redeemed_credits == 9.0
        assert [(p.programme_id, p.credits) for p in transcript.redeemed_by_programme] == [
            ("du-bsc", 6.0),
            ("iitm-btech", 3.0),
        ]

        # Redemption entries verify like every other entry (what `ledgerctl verify` runs).
        report = await verify_ledger(s.db, learner_id=learner)
        assert report.first_break is None
        assert report.entries_checked == len(entries) == 9


async def test_bad_input_consent_and_programmes(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    learner = "932000000001"
    async with stack(kafka_bootstrap, database_url, topics) as s:
        await create_programme(s, "du-ma", "du", 40, s.du)
        await create_programme(s, "du-mba", "du", 60, s.admin)
        await create_programme(s, "iitm-ms", "iitm", 40, s.iitm)
        seq = await credited(s, learner, ["uc-1"], [])  # no consent to anyone

        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await s.stub.RedeemCredits(
                R.RedeemCreditsRequest(
                    redemption_id="", learner_id="12ab", programme_id="du-ma",
                    credential_sequences=[1, 0, 1],
                ),
                metadata=s.du,
            )  # fmt: skip
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(bad.value) == [
            "learner_id",
            "redemption_id",
            "credential_sequences[1]",
            "credential_sequences[2]",
        ]
        with pytest.raises(grpc.aio.AioRpcError) as neither:
            await s.stub.RedeemCredits(
                R.RedeemCreditsRequest(redemption_id="x", learner_id=learner, programme_id="du-ma"),
                metadata=s.du,
            )
        assert violations(neither.value) == ["credential_sequences"]
        # Another university's programme (or an unknown one): a field violation.
        with pytest.raises(grpc.aio.AioRpcError) as foreign:
            await s.stub.RedeemCredits(
                R.RedeemCreditsRequest(
                    redemption_id="x", learner_id=learner, programme_id="iitm-ms",
                    credential_sequences=[seq["uc-1"]],
                ),
                metadata=s.du,
            )  # fmt: skip
        assert violations(foreign.value) == ["programme_id"]
        # No consent: PERMISSION_DENIED, and nothing was requested.
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await s.stub.RedeemCredits(
                R.RedeemCreditsRequest(
                    redemption_id="no-consent", learner_id=learner, programme_id="du-ma",
                    credential_sequences=[seq["uc-1"]],
                ),
                metadata=s.du,
            )  # fmt: skip
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(denied.value).reason == "NO_CONSENT"
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await s.stub.GetRedemption(
                R.GetRedemptionRequest(redemption_id="no-consent"), metadata=s.du
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        # Only universities redeem.
        for token in (s.admin, s.issuer):
            with pytest.raises(grpc.aio.AioRpcError) as wrong:
                await s.stub.RedeemCredits(R.RedeemCreditsRequest(), metadata=token)
            assert wrong.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # Programmes: a university registers only its own; bad values are field violations.
        with pytest.raises(grpc.aio.AioRpcError) as foreign_programme:
            await create_programme(s, "du-fake", "iitm", 40, s.du)
        assert foreign_programme.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await create_programme(s, "du-huge", "du", 400, s.du)
        assert violations(too_big.value) == ["programme.total_credits"]
        with pytest.raises(grpc.aio.AioRpcError) as taken:
            await create_programme(s, "du-ma", "du", 40, s.du)
        assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS

        # AIP-158 pages: a university sees its own programmes, an admin every one.
        own = sorted(
            r["programme_id"]
            for r in await s.db.fetch(
                "SELECT programme_id FROM programmes WHERE university_id = 'du'"
            )
        )
        assert {"du-ma", "du-mba"} <= set(own)
        paged: list[str] = []
        token = ""
        while True:
            page = await s.stub.ListProgrammes(
                R.ListProgrammesRequest(page_size=1, page_token=token), metadata=s.du
            )
            assert len(page.programmes) == 1
            paged += [p.programme_id for p in page.programmes]
            token = page.next_page_token
            if not token:
                break
        assert paged == own
        every = await s.stub.ListProgrammes(R.ListProgrammesRequest(), metadata=s.admin)
        assert {p.programme_id for p in every.programmes} >= {"du-ma", "du-mba", "iitm-ms"}
        with pytest.raises(grpc.aio.AioRpcError) as negative:
            await s.stub.ListProgrammes(R.ListProgrammesRequest(page_size=-1), metadata=s.du)
        assert violations(negative.value) == ["page_size"]
        with pytest.raises(grpc.aio.AioRpcError) as foreign:
            await s.stub.ListProgrammes(
                R.ListProgrammesRequest(university_id="iitm"), metadata=s.du
            )
        assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
        refused = error_info(foreign.value)
        assert (refused.reason, dict(refused.metadata)) == (
            "FOREIGN_UNIVERSITY",
            {"university_id": "du"},
        )


async def test_concurrent_conflicting_redemptions_redeem_each_credit_at_most_once(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    """Two universities race: 300 concurrent redemptions over the same learners' credits.
    (The ledger is not killed during this run; tests/integration/test_ledger_crash.py covers
    SIGKILL of the same append path.)"""
    learners = [f"933000000{n:03d}" for n in range(10)]
    courses = ["uc-1", "uc-2", "uc-3", "uc-4"]
    rng = random.Random(14)
    async with stack(kafka_bootstrap, database_url, topics) as s:
        await create_programme(s, "du-race", "du", 160, s.du)
        await create_programme(s, "iitm-race", "iitm", 160, s.iitm)
        sequences = {
            learner: await credited(s, learner, courses, ["du", "iitm"]) for learner in learners
        }
        asks: list[tuple[Any, R.RedeemCreditsRequest]] = []
        for n in range(150):
            for university, token in (("du", s.du), ("iitm", s.iitm)):
                learner = rng.choice(learners)
                chosen = rng.sample(list(sequences[learner].values()), rng.randint(1, 4))
                asks.append(
                    (
                        token,
                        R.RedeemCreditsRequest(
                            redemption_id=f"{university}-race-{n}",
                            learner_id=learner,
                            programme_id=f"{university}-race",
                            credential_sequences=chosen,
                            allow_partial=rng.random() < 0.5,
                        ),
                    )
                )
        gate = asyncio.Semaphore(50)

        async def send(token: Any, ask: R.RedeemCreditsRequest) -> str:
            async with gate:
                await s.stub.RedeemCredits(ask, metadata=token)
                return ask.redemption_id

        acknowledged = await asyncio.gather(*(send(t, a) for t, a in asks))
        assert len(acknowledged) == 300

        async def all_decided() -> bool:
            count = await s.db.fetchval(
                "SELECT count(*) FROM credit_log WHERE learner_id = ANY($1::text[]) "
                "AND kind IN ('credits_redeemed', 'redemption_refused')",
                learners,
            )
            return count == len(asks)

        await eventually(all_decided, timeout=120, what="every redemption decided")
        rows = await s.db.fetch(
            "SELECT learner_id, payload FROM credit_log WHERE learner_id = ANY($1::text[]) "
            "AND kind IN ('credits_redeemed', 'redemption_refused')",
            learners,
        )
        import json

        redeemed: Counter[tuple[str, int]] = Counter()
        decided_ids: Counter[str] = Counter()
        for row in rows:
            payload = json.loads(row["payload"])
            decided_ids[payload["redemption_id"]] += 1
            for line in payload["lines"]:
                if line["outcome"] == "redeemed":
                    redeemed[(row["learner_id"], line["sequence"])] += 1
        # Every acknowledged redemption decided exactly once; every credit redeemed at most once.
        assert decided_ids == Counter(acknowledged)
        assert max(redeemed.values()) == 1
        table = await s.db.fetch(
            "SELECT learner_id, credential_sequence FROM redeemed_credentials "
            "WHERE learner_id = ANY($1::text[])",
            learners,
        )
        assert {(r["learner_id"], r["credential_sequence"]) for r in table} == set(redeemed)
        # Both universities won some: the race was real.
        winners = Counter(
            r["university_id"]
            for r in await s.db.fetch(
                "SELECT university_id FROM redeemed_credentials WHERE learner_id = ANY($1)",
                learners,
            )
        )
        print(
            f"concurrency: {len(acknowledged)} acknowledged, {len(rows)} decided, "
            f"{len(redeemed)} credits redeemed once each of "
            f"{sum(len(v) for v in sequences.values())}, by university {dict(winners)}"
        )
        assert set(winners) == {"du", "iitm"}
        for learner in learners:
            assert (await verify_ledger(s.db, learner_id=learner)).first_break is None


async def test_list_redemptions_by_programme_and_learner_paged_filtered_and_authorized(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    ann, bob = "934000000001", "934000000002"
    async with stack(kafka_bootstrap, database_url, topics) as s:
        await create_programme(s, "du-list-a", "du", 40, s.du)
        await create_programme(s, "du-list-b", "du", 40, s.du)
        await create_programme(s, "iitm-list", "iitm", 40, s.iitm)
        seq_ann = await credited(s, ann, ["uc-1", "uc-2", "uc-3"], ["du", "iitm"])
        seq_bob = await credited(s, bob, ["uc-1"], ["du"])
        asks = [
            (s.du, "du-l1", ann, "du-list-a", [seq_ann["uc-1"]]),
            (s.du, "du-l2", bob, "du-list-b", [seq_bob["uc-1"]]),
            (s.iitm, "iitm-l1", ann, "iitm-list", [seq_ann["uc-2"]]),
            (s.du, "du-l3", ann, "du-list-b", [seq_ann["uc-2"]]),  # iitm won it: refused
            (s.du, "du-l4", ann, "du-list-b", [seq_ann["uc-3"]]),
        ]
        for token, rid, learner, programme, sequences in asks:
            await s.stub.RedeemCredits(
                R.RedeemCreditsRequest(
                    redemption_id=rid,
                    learner_id=learner,
                    programme_id=programme,
                    credential_sequences=sequences,
                ),
                metadata=token,
            )
            await decided(s, rid, token)  # one after the other: the request order is known

        async def listed(token: Any, text: str, page_size: int = 0) -> list[R.Redemption]:
            found: list[R.Redemption] = []
            page_token = ""
            while True:
                page = await s.stub.ListRedemptions(
                    R.ListRedemptionsRequest(
                        filter=text, page_size=page_size, page_token=page_token
                    ),
                    metadata=token,
                )
                if page_size:
                    assert len(page.redemptions) <= page_size
                found += page.redemptions
                page_token = page.next_page_token
                if not page_token:
                    return found

        def ids(found: list[R.Redemption]) -> list[str]:
            return [r.redemption_id for r in found]

        # By programme and by learner, in request order, one per page.
        assert ids(await listed(s.du, 'programme_id = "du-list-b"', 1)) == [
            "du-l2",
            "du-l3",
            "du-l4",
        ]
        by_ann = await listed(s.du, f"learner_id = {ann}", 2)
        assert ids(by_ann) == ["du-l1", "du-l3", "du-l4"]  # not IIT Madras' redemption
        assert [r.state for r in by_ann] == [
            R.REDEMPTION_STATE_REDEEMED,
            R.REDEMPTION_STATE_REFUSED,
            R.REDEMPTION_STATE_REDEEMED,
        ]
        assert outcomes(by_ann[1]) == [(seq_ann["uc-2"], OUT.REDEMPTION_OUTCOME_ALREADY_REDEEMED)]
        assert ids(await listed(s.du, f'learner_id = "{ann}" AND state = REFUSED')) == ["du-l3"]
        assert ids(await listed(s.iitm, f"learner_id = {ann}")) == ["iitm-l1"]
        # An admin sees every university's, or one university's.
        assert ids(await listed(s.admin, f"learner_id = {ann}", 1)) == [
            "du-l1",
            "iitm-l1",
            "du-l3",
            "du-l4",
        ]
        assert ids(await listed(s.admin, f"learner_id = {ann} AND university_id = iitm")) == [
            "iitm-l1"
        ]

        # The issuer revokes a redeemed completion: the redeeming university's list says so.
        await produce(s.bootstrap, s.topic, [revocation(ann, f"{ann}-uc-1")])

        async def flagged() -> bool:
            found = await listed(s.du, f"learner_id = {ann} AND revoked_after_redemption = true")
            return ids(found) == ["du-l1"]

        await eventually(flagged, what="du-l1 listed as revoked after redemption")
        (l1,) = await listed(s.du, f"learner_id = {ann} AND revoked_after_redemption = true")
        assert list(l1.revoked_after_redemption) == [seq_ann["uc-1"]]
        assert l1.state == R.REDEMPTION_STATE_REDEEMED  # the debit stays
        got = await s.stub.GetRedemption(
            R.GetRedemptionRequest(redemption_id="du-l1"), metadata=s.du
        )
        assert list(got.redemption.revoked_after_redemption) == [seq_ann["uc-1"]]
        assert ids(await listed(s.du, f"learner_id={ann} AND revoked_after_redemption=false")) == [
            "du-l3",
            "du-l4",
        ]

        # Authorization and validation.
        with pytest.raises(grpc.aio.AioRpcError) as foreign:
            await s.stub.ListRedemptions(
                R.ListRedemptionsRequest(filter="university_id = iitm"), metadata=s.du
            )
        assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as wrong_kind:
            await s.stub.ListRedemptions(R.ListRedemptionsRequest(), metadata=s.issuer)
        assert wrong_kind.value.code() == grpc.StatusCode.PERMISSION_DENIED
        for text in (
            "colour = red",
            "learner_id = 12",
            "state = LOST",
            "revoked_after_redemption = maybe",
            'programme_id = "a" OR programme_id = "b"',
            "learner_id = 934000000001 AND learner_id = 934000000002",
        ):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await s.stub.ListRedemptions(R.ListRedemptionsRequest(filter=text), metadata=s.du)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, text
            assert violations(bad.value) == ["filter"], text
        first = await s.stub.ListRedemptions(
            R.ListRedemptionsRequest(filter=f"learner_id = {ann}", page_size=1), metadata=s.du
        )
        assert first.next_page_token
        for text, token in (
            (f"learner_id = {bob}", s.du),  # another filter
            (f"learner_id = {ann}", s.admin),  # another caller
        ):
            with pytest.raises(grpc.aio.AioRpcError) as replayed:
                await s.stub.ListRedemptions(
                    R.ListRedemptionsRequest(filter=text, page_token=first.next_page_token),
                    metadata=token,
                )
            assert violations(replayed.value) == ["page_token"]
        with pytest.raises(grpc.aio.AioRpcError) as garbage:
            await s.stub.ListRedemptions(
                R.ListRedemptionsRequest(page_token="not-a-token", page_size=-1), metadata=s.du
            )
        assert violations(garbage.value) == ["page_size"]  # the token is checked once valid


async def test_summary_watch_and_registrar_csv_show_redemptions(
    kafka_bootstrap: str, database_url: str, topics: Any, tmp_path: Any
) -> None:
    """GetCreditSummary: available vs redeemed by programme; WatchTranscript: an update that
    redeemed, then one that revoked after redemption; `ledgerctl transcripts`: the
    redeemed_credits column."""
    import io

    from learnerledger.ctl.commands.transcripts import write_transcripts
    from learnerledger.v1 import transcript_query_pb2_grpc
    from learnerledger_client import ClientConfig
    from tests.support.projector import running_projector

    learner = "935000000001"
    Q = transcript_query_pb2
    async with (
        stack(kafka_bootstrap, database_url, topics) as s,
        running_projector(
            kafka_bootstrap, database_url, topics.ledger_entries, f"p-{topics.ledger_entries}"
        ),
        query_address(database_url) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(channel)
        await create_programme(s, "du-watch", "du", 40, s.du)
        seq = await credited(s, learner, ["uc-1", "uc-2", "sw-1"], ["du"])
        ask = Q.WatchTranscriptRequest(learner_id=learner)

        async def projected() -> bool:
            try:
                reply = await query.GetTranscript(
                    Q.GetTranscriptRequest(learner_id=learner), metadata=s.du
                )
            except grpc.aio.AioRpcError:
                return False
            return reply.transcript.last_sequence == 4

        await eventually(projected, what="the learner's transcript")
        watch = query.WatchTranscript(ask, metadata=s.du)
        first = await asyncio.wait_for(watch.read(), 30)
        assert first.applied_sequence == 4
        assert list(first.redeemed_sequences) == []

        await s.stub.RedeemCredits(
            R.RedeemCreditsRequest(
                redemption_id="du-w1",
                learner_id=learner,
                programme_id="du-watch",
                credential_sequences=[seq["uc-1"], seq["sw-1"]],
            ),
            metadata=s.du,
        )
        redeemed = await asyncio.wait_for(watch.read(), 60)
        assert redeemed.applied_sequence == 5
        assert list(redeemed.redeemed_sequences) == [seq["uc-1"], seq["sw-1"]]
        assert list(redeemed.revoked_after_redemption_sequences) == []
        shown = {c.sequence: c for c in redeemed.transcript.credentials}
        assert shown[seq["uc-1"]].status == Q.CREDENTIAL_STATUS_REDEEMED
        assert shown[seq["uc-1"]].redemption.redemption_id == "du-w1"
        assert redeemed.transcript.redeemed_credits == 6.0

        await produce(s.bootstrap, s.topic, [revocation(learner, f"{learner}-sw-1")])
        revoked = await asyncio.wait_for(watch.read(), 60)
        assert revoked.applied_sequence == 6
        assert list(revoked.redeemed_sequences) == []
        assert list(revoked.revoked_after_redemption_sequences) == [seq["sw-1"]]
        shown = {c.sequence: c for c in revoked.transcript.credentials}
        assert shown[seq["sw-1"]].status == Q.CREDENTIAL_STATUS_REDEEMED  # the debit stays
        assert shown[seq["sw-1"]].redemption.revoked_after_redemption
        assert not shown[seq["uc-1"]].redemption.revoked_after_redemption
        watch.cancel()

        summary = (
            await query.GetCreditSummary(
                Q.GetCreditSummaryRequest(learner_id=learner), metadata=s.du
            )
        ).summary
        assert summary.total_active_credits == 3.0  # uc-2: available
        assert summary.redeemed_credits == 6.0
        assert [
            (p.university_id, p.programme_id, p.credits) for p in summary.redeemed_by_programme
        ] == [("du", "du-watch", 6.0)]

        out = io.StringIO()
        token = s.du[0][1].removeprefix("Bearer ")
        await write_transcripts([learner], ClientConfig(target=address, token=token), out)
        header, row = out.getvalue().splitlines()
        record = dict(zip(header.split(","), row.split(","), strict=True))
        assert (record["status"], record["active_credits"], record["redeemed_credits"]) == (
            "ok",
            "3.0",
            "6.0",
        )


async def test_registrar_cli_and_categorising_existing_courses(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    """`ledgerctl programme create|list`, `ledgerctl redeem` (printed per credential), and an
    admin categorising courses added before categories existed (RPC and `ledgerctl course`)."""
    from learnerledger.v1 import ledger_admin_pb2, ledger_admin_pb2_grpc
    from tests.support.cli import ledgerctl_output

    learner = "936000000001"
    async with stack(kafka_bootstrap, database_url, topics) as s:
        for course_id in ("legacy-1", "legacy-2"):  # added as university courses (the default)
            with contextlib.suppress(catalog.AlreadyExists):
                await catalog.add_course(
                    s.db,
                    Course(course_id, "swayam", course_id, Decimal("5.5"), 90,
                           CreditRecommendation.APPROVED),
                )  # fmt: skip
        admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(s.channel)
        set_category = ledger_admin_pb2.SetCourseCategoryRequest
        reply = await admin.SetCourseCategory(
            set_category(
                course_id="legacy-1", category=OUT.COURSE_CATEGORY_SWAYAM_MOOC, reason="a MOOC"
            ),
            metadata=s.admin,
        )
        assert reply.course.category == OUT.COURSE_CATEGORY_SWAYAM_MOOC
        with pytest.raises(grpc.aio.AioRpcError) as unset:
            await admin.SetCourseCategory(set_category(course_id="legacy-1"), metadata=s.admin)
        assert violations(unset.value) == ["category"]
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await admin.SetCourseCategory(
                set_category(course_id="nope", category=OUT.COURSE_CATEGORY_SKILLING),
                metadata=s.admin,
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as not_admin:
            await admin.SetCourseCategory(
                set_category(course_id="legacy-1", category=OUT.COURSE_CATEGORY_SKILLING),
                metadata=s.du,
            )
        assert not_admin.value.code() in (
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.UNAUTHENTICATED,
        )
        env = {"DATABASE_URL": database_url}
        code, out, err = await ledgerctl_output(
            env, "course", "categorise", "legacy-2", "--category", "micro_credential"
        )
        assert code == 0, err
        code, out, err = await ledgerctl_output(env, "course", "list", "--issuer", "swayam")
        listed = {line.split()[0]: line for line in out.splitlines()[1:]}
        assert "swayam_mooc" in listed["legacy-1"]
        assert "micro_credential" in listed["legacy-2"]
        history = await s.db.fetch(
            "SELECT course_id, category, previous FROM course_category_changes "
            "WHERE course_id LIKE 'legacy-%' ORDER BY change_id"
        )
        assert [tuple(r) for r in history] == [
            ("legacy-1", "swayam_mooc", "university_course"),
            ("legacy-2", "micro_credential", "university_course"),
        ]

        seq = await credited(s, learner, ["legacy-1", "uc-1"], ["du"])
        cli = {"LEDGERCTL_UNIVERSITY_TOKEN": s.du[0][1].removeprefix("Bearer ")}
        ledger = ("--ledger", f"127.0.0.1:{s.port}")
        code, out, err = await ledgerctl_output(
            cli, "programme", "create", "du-cli", "--university", "du", "--title", "B.Voc",
            "--level", "6", "--credits", "5", *ledger,
        )  # fmt: skip
        assert code == 0, err
        code, out, err = await ledgerctl_output(cli, "programme", "list", *ledger)
        assert code == 0, err
        assert any(line.split()[:2] == ["du-cli", "du"] for line in out.splitlines())

        # A 5-credit programme takes 2 SWAYAM credits: legacy-1 (3, now a SWAYAM MOOC) is
        # refused for the cap, uc-1 (3, a university course) is redeemed.
        redeem = (
            "redeem", "--learner", learner, "--programme", "du-cli", "--redemption-id",
            "cli-1", "--sequence", str(seq["legacy-1"]), str(seq["uc-1"]), *ledger,
        )  # fmt: skip
        code, out, err = await ledgerctl_output(cli, *redeem)
        assert code == 0, err
        assert "redemption cli-1: learner 936000000001, programme du-cli (du): REDEEMED" in out
        lines = {int(line.split()[0]): line.split() for line in out.splitlines()[2:]}
        assert lines[seq["legacy-1"]][1:] == ["legacy-1", "swayam_mooc", "3.0", "CAP_EXCEEDED"]
        assert lines[seq["uc-1"]][1:] == ["uc-1", "university_course", "3.0", "REDEEMED"]
        again_code, again, _ = await ledgerctl_output(cli, *redeem)  # a retry: the same answer
        assert (again_code, again) == (code, out)
        code, out, err = await ledgerctl_output(
            cli, "redeem", "--learner", learner, "--programme", "du-cli", "--all",
            "--all-or-nothing", *ledger,
        )  # fmt: skip
        assert code == 1, (out, err)  # legacy-1 is still over the cap: nothing redeemed
        assert "REFUSED" in out
        assert "CAP_EXCEEDED" in out
        code, out, err = await ledgerctl_output(
            cli, "redeem", "--learner", "12ab", "--programme", "du-cli", "--sequence", "1",
            *ledger,
        )  # fmt: skip
        assert code == 2
        assert "INVALID_ARGUMENT" in err
        assert "learner_id:" in err


async def test_replay_of_the_read_model_rebuilds_redemptions_identically(
    kafka_bootstrap: str, database_url: str, topics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ledgerctl replay projections` rebuilds where and when each credential was redeemed
    (and revoked after redemption) exactly as the live projection wrote it."""
    from learnerledger.ctl.main import build_parser, run
    from learnerledger.postgres import read_model
    from tests.support.projector import log_heads, projected, running_projector

    learners = ["938000000001", "938000000002"]
    for name, value in {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        **topics.env(),
    }.items():
        monkeypatch.setenv(name, value)
    async with (
        stack(kafka_bootstrap, database_url, topics) as s,
        running_projector(
            kafka_bootstrap, database_url, topics.ledger_entries, f"p-{topics.ledger_entries}"
        ),
    ):
        await create_programme(s, "du-replay", "du", 10, s.du)
        await create_programme(s, "iitm-replay", "iitm", 40, s.iitm)
        for n, learner in enumerate(learners):
            await credited(s, learner, ["sw-1", "sw-2", "uc-1", "uc-2"], ["du", "iitm"])
            for token, rid, programme in (
                (s.du, f"du-rp-{n}", "du-replay"),  # 10 credits: one SWAYAM refused (cap 4)
                (s.iitm, f"iitm-rp-{n}", "iitm-replay"),  # the rest
            ):
                await s.stub.RedeemCredits(
                    R.RedeemCreditsRequest(
                        redemption_id=rid,
                        learner_id=learner,
                        programme_id=programme,
                        all_eligible=True,
                        allow_partial=True,
                    ),
                    metadata=token,
                )
                await decided(s, rid, token)
        await produce(s.bootstrap, s.topic, [revocation(learners[0], f"{learners[0]}-uc-1")])

        async def projected_all() -> bool:
            # 4 credits, 2 consents, 2 redemptions each; and the first learner's revocation.
            heads = await log_heads(database_url, learners)
            expected = {learners[0]: 9, learners[1]: 8}
            return heads == expected and await projected(database_url, learners) == heads

        await eventually(projected_all, what="the live projection of the redemptions")
        columns = (
            "learner_id, sequence, redeemed_by_sequence, redeemed_at, redeemed_university_id, "
            "redeemed_programme_id, redemption_id, revoked_at"
        )

        async def rows() -> list[tuple[Any, ...]]:
            return [
                tuple(r)
                for r in await s.db.fetch(
                    f"SELECT {columns} FROM read_credentials WHERE learner_id = ANY($1::text[]) "
                    "ORDER BY learner_id, sequence",
                    learners,
                )
            ]

        live = await rows()
        assert sum(1 for r in live if r[6] is not None) == 8  # every credential redeemed once
        assert {r[4] for r in live} == {"du", "iitm"}
        live_states = await read_model.load_states(s.db, learners)
        # A projection bug, simulated: the live model forgot one learner's redemptions.
        await s.db.execute(
            "UPDATE read_credentials SET redeemed_by_sequence = NULL, redeemed_at = NULL, "
            "redeemed_university_id = NULL, redeemed_programme_id = NULL, redemption_id = NULL "
            "WHERE learner_id = $1",
            learners[1],
        )
        assert await rows() != live

        args = ["replay", "projections", *(a for lr in learners for a in ("--learner", lr))]
        code = await asyncio.to_thread(run, build_parser().parse_args(args))
        assert code == 0
        assert await rows() == live
        rebuilt = await read_model.load_states(s.db, learners)
        assert rebuilt == live_states
        for learner in learners:
            entries = await credit_log.learner_entries(s.db, learner)
            assert rebuilt[learner] == TranscriptProjection.fold(learner, entries)
        first = rebuilt[learners[0]]
        uc_1 = next(c for c in first.credentials.values() if c.course_id == "uc-1")
        assert uc_1.revoked_after_redemption(datetime.now(UTC))
