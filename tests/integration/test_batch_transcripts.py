"""BatchGetTranscripts on real Kafka and PostgreSQL (ledger, projector and query in-process),
over gRPC and through the client library: each learner answered or refused on its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from learnerledger.postgres import catalog
from learnerledger.query.server import MAX_BATCH_LEARNERS
from learnerledger.query.service import run_query
from learnerledger.query.settings import QuerySettings
from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import transcript_query_pb2 as pb
from learnerledger.v1 import transcript_query_pb2_grpc as pb_grpc
from learnerledger_client import (
    MAX_LEARNERS_PER_BATCH,
    CallFailed,
    ClientConfig,
    LearnerTranscript,
    ReadStatus,
    blocking,
)
from learnerledger_client import aio as client_aio
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    revocation,
    running_ledger,
    seed_catalog,
    seed_courses,
)
from tests.support.projector import log_heads, projected, running_projector

pytestmark = pytest.mark.integration

# DIANA consents to du and holds an active, a revoked and an expired credit; EVE holds a
# credit and consents to nobody; FRANK has no entries at all; "12ab" is not an APAAR id.
DIANA, EVE, FRANK, INVALID = "531111111111", "532222222222", "533333333333", "12ab"
LONG_AGO = datetime.now(UTC) - timedelta(days=8 * 365)  # past the 7-year validity


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@contextlib.asynccontextmanager
async def running_query_port(database_url: str) -> AsyncIterator[int]:
    settings = QuerySettings(database_url=database_url, grpc_port=0, metrics_port=0)
    stop = asyncio.Event()
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_query(settings, stop, bound))
    try:
        yield await asyncio.wait_for(bound, 15)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


@pytest.fixture
async def query_port(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> AsyncIterator[tuple[int, dict[str, str]]]:
    await seed_catalog(database_url)
    await seed_courses(database_url, ["bt-1", "bt-2", "bt-3"])
    connection = await asyncpg.connect(database_url)
    try:
        kinds = {
            "du": catalog.PrincipalKind.UNIVERSITY,
            "ops": catalog.PrincipalKind.ADMIN,
            "swayam": catalog.PrincipalKind.ISSUER,
        }
        tokens = {
            who: (await catalog.issue_token(connection, kind, who))[1]
            for who, kind in kinds.items()
        }
    finally:
        await connection.close()
    seed = [
        consent(DIANA),
        completion(DIANA, "bt-active", course_id="bt-1"),
        completion(DIANA, "bt-revoked", course_id="bt-2"),
        revocation(DIANA, "bt-revoked"),
        completion(DIANA, "bt-expired", course_id="bt-3", completed_at=LONG_AGO),
        completion(EVE, "bt-eve", course_id="bt-1"),
    ]
    if not await log_heads(database_url, [DIANA]):  # seeded once per module database
        await produce(kafka_bootstrap, topics.completions, seed)
    async with (
        running_ledger(kafka_bootstrap, database_url, topics),
        running_projector(
            kafka_bootstrap, database_url, topics.ledger_entries, f"p-{topics.ledger_entries}"
        ),
        running_query_port(database_url) as port,
    ):

        async def caught_up() -> bool:
            heads = await log_heads(database_url, [DIANA, EVE])
            if heads != {DIANA: 5, EVE: 1}:
                return False
            return await projected(database_url, [DIANA, EVE]) == heads

        await eventually(caught_up, what="the seed to be projected")
        yield port, tokens


def error_of(result: pb.TranscriptResult) -> tuple[grpc.StatusCode, str, list[str]]:
    """A refused learner's status code, ErrorInfo reason and violated fields."""
    assert result.WhichOneof("result") == "error", result
    status = status_pb2.Status.FromString(result.error.SerializeToString())
    reason, fields = "", []
    for holder in status.details:
        if holder.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            holder.Unpack(info)
            reason = info.reason
        elif holder.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            holder.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    code = next(c for c in grpc.StatusCode if c.value[0] == status.code)
    return code, reason, fields


async def test_each_learner_is_answered_or_refused_on_its_own(
    query_port: tuple[int, dict[str, str]],
) -> None:
    port, tokens = query_port
    asked = [DIANA, EVE, FRANK, INVALID, DIANA]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.TranscriptQueryServiceStub(channel)
        as_university = await stub.BatchGetTranscripts(
            pb.BatchGetTranscriptsRequest(learner_ids=asked), metadata=bearer(tokens["du"])
        )
        as_admin = await stub.BatchGetTranscripts(
            pb.BatchGetTranscriptsRequest(learner_ids=asked), metadata=bearer(tokens["ops"])
        )
        single = await stub.GetTranscript(
            pb.GetTranscriptRequest(learner_id=DIANA), metadata=bearer(tokens["du"])
        )

    # One result per id asked, in the order asked (the repeated id answered twice).
    assert [r.learner_id for r in as_university.results] == asked
    assert [r.learner_id for r in as_admin.results] == asked

    diana = as_university.results[0].transcript
    assert (diana.active_credits, diana.revoked_credits, diana.expired_credits) == (3, 3, 3)
    # The same transcript GetTranscript gives (the read instant aside).
    for field in ("as_of", "known_at"):
        diana.ClearField(field)
        single.transcript.ClearField(field)
    assert diana == single.transcript
    assert as_university.results[4].transcript.learner_id == DIANA
    # No consent: that learner's PERMISSION_DENIED; an unknown learner without consent is
    # refused the same way (a university cannot probe who has a record).
    assert error_of(as_university.results[1])[:2] == (
        grpc.StatusCode.PERMISSION_DENIED, "CONSENT_NOT_GRANTED",
    )  # fmt: skip
    assert error_of(as_university.results[2])[:2] == (
        grpc.StatusCode.PERMISSION_DENIED, "CONSENT_NOT_GRANTED",
    )  # fmt: skip
    assert error_of(as_university.results[3]) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["learner_ids[3]"],
    )  # fmt: skip

    # An admin reads every record: EVE's transcript, FRANK NOT_FOUND.
    assert as_admin.results[1].transcript.active_credits == 3.0
    assert error_of(as_admin.results[2])[:2] == (grpc.StatusCode.NOT_FOUND, "LEARNER_NOT_FOUND")
    assert error_of(as_admin.results[3])[0] is grpc.StatusCode.INVALID_ARGUMENT


async def test_the_call_itself_fails_only_for_the_caller_or_the_whole_request(
    query_port: tuple[int, dict[str, str]],
) -> None:
    port, tokens = query_port
    over = [f"5{n:011d}" for n in range(MAX_BATCH_LEARNERS + 1)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.TranscriptQueryServiceStub(channel)

        async def failure(learner_ids: list[str], token: str | None) -> grpc.aio.AioRpcError:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.BatchGetTranscripts(
                    pb.BatchGetTranscriptsRequest(learner_ids=learner_ids),
                    metadata=bearer(token) if token else (),
                )
            return failed.value

        too_many = await failure(over, tokens["du"])
        assert too_many.code() is grpc.StatusCode.INVALID_ARGUMENT
        [violations] = [
            d for d in decode_details(too_many.trailing_metadata())
            if isinstance(d, error_details_pb2.BadRequest)
        ]  # fmt: skip
        assert [v.field for v in violations.field_violations] == ["learner_ids"]
        assert "at most 100 learner ids per call, got 101" in too_many.details()
        # Exactly the maximum is fine.
        at_most = await stub.BatchGetTranscripts(
            pb.BatchGetTranscriptsRequest(learner_ids=over[:MAX_BATCH_LEARNERS]),
            metadata=bearer(tokens["ops"]),
        )
        assert len(at_most.results) == MAX_BATCH_LEARNERS
        assert (await failure([], tokens["du"])).code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (await failure([DIANA], tokens["swayam"])).code() is (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert (await failure([DIANA], None)).code() is grpc.StatusCode.UNAUTHENTICATED


async def test_the_library_chunks_long_lists_and_types_every_result(
    query_port: tuple[int, dict[str, str]],
) -> None:
    port, tokens = query_port
    config = ClientConfig(target=f"127.0.0.1:{port}", token=tokens["du"])
    # 250 ids: more than two calls' worth at the server's maximum, DIANA first and last.
    others = [f"54{n:010d}" for n in range(248)]
    asked = [DIANA, *others, DIANA]
    async with client_aio.RegistrarClient(config) as registrar:
        results = await registrar.batch_get_transcripts(asked)
        small_chunks = await registrar.batch_get_transcripts([DIANA, EVE, INVALID], batch_size=2)
        with pytest.raises(CallFailed) as over_limit:
            await registrar.batch_get_transcripts(
                others[: MAX_LEARNERS_PER_BATCH + 1], batch_size=MAX_LEARNERS_PER_BATCH + 1
            )
    assert [r.learner_id for r in results] == asked
    assert results[0].ok
    assert results[-1].ok
    assert results[0].transcript is not None
    assert results[0].transcript.active_credits == 3.0
    assert {r.status for r in results[1:-1]} == {ReadStatus.PERMISSION_DENIED}
    assert {r.reason for r in results[1:-1]} == {"CONSENT_NOT_GRANTED"}
    assert [r.status for r in small_chunks] == [
        ReadStatus.OK, ReadStatus.PERMISSION_DENIED, ReadStatus.INVALID,
    ]  # fmt: skip
    assert small_chunks[2].field_problems[0].field == "learner_ids[0]"  # of its own chunk
    assert small_chunks[1].code is grpc.StatusCode.PERMISSION_DENIED
    assert over_limit.value.code is grpc.StatusCode.INVALID_ARGUMENT

    admin = ClientConfig(target=f"127.0.0.1:{port}", token=tokens["ops"])

    def registrar() -> list[LearnerTranscript]:  # the blocking flavour, off the test's loop
        with blocking.RegistrarClient(admin) as reader:
            return reader.batch_get_transcripts([EVE, FRANK, INVALID])

    read = await asyncio.to_thread(registrar)
    assert [r.status for r in read] == [ReadStatus.OK, ReadStatus.NOT_FOUND, ReadStatus.INVALID]
    assert read[1].reason == "LEARNER_NOT_FOUND"
    assert read[0].transcript is not None
    assert read[0].transcript.active_credits == 3.0
