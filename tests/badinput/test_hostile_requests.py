"""Hostile requests through the real gateway, admin API and ledger on real Kafka and PostgreSQL.

Oversized messages, huge strings, invalid UTF-8, out-of-range timestamps, absurd hours, SQL
and log-injection strings, and undecodable records on the completions topic: each is refused
with INVALID_ARGUMENT (field violations), dead-lettered, or stored byte-for-byte and harmlessly,
and the structured logs stay one JSON object per line.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from learnerledger.domain.events import CompletionSubmitted
from learnerledger.kafka.codec import decode_completion_event, encode_completion_event
from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import (
    common_pb2,
    events_pb2,
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
)
from tests.support.gateway import auth, completion, running_gateway
from tests.support.hostile import assert_one_json_object_per_line, json_logs, raw_field
from tests.support.ledger import (
    completion as ledger_completion,
)
from tests.support.ledger import (
    eventually,
    produce,
    read_topic,
    running_ledger,
    seed_catalog,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

pb = issuer_gateway_pb2
SUBMIT = "/learnerledger.v1.IssuerGatewayService/SubmitCompletion"
HOSTILE = (
    "'; DROP TABLE credit_log; --",
    '\n{"level":"error","event":"forged"}',
    "\u0000",
    "%s%n",
)


@pytest.fixture(scope="module")
async def tokens(database_url: str) -> dict[str, str]:
    await seed_catalog(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        _, swayam = await catalog.issue_token(connection, PrincipalKind.ISSUER, "swayam")
        _, admin = await catalog.issue_token(connection, PrincipalKind.ADMIN, "ops")
    finally:
        await connection.close()
    return {"swayam": swayam, "admin": admin}


def violations(error: grpc.aio.AioRpcError) -> list[str]:
    """The field paths of the BadRequest detail of a failed call."""
    return [
        v.field
        for d in decode_details(error.trailing_metadata())
        if isinstance(d, error_details_pb2.BadRequest)
        for v in d.field_violations
    ]


async def topic_is_empty(kafka_bootstrap: str, topic: str) -> bool:
    try:
        await read_topic(kafka_bootstrap, topic, 1, timeout=2.0)
    except TimeoutError:
        return True
    return False


async def submit_fails(stub: Any, c: common_pb2.Completion, token: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.SubmitCompletion(pb.SubmitCompletionRequest(completion=c), metadata=auth(token))
    return failed.value


async def outcome(call: Any) -> tuple[Any, grpc.aio.AioRpcError | None]:
    """The response of a call, or the error it failed with."""
    try:
        return await call, None
    except grpc.aio.AioRpcError as error:
        return None, error


# 1. sizes ---------------------------------------------------------------------------------------


async def test_oversized_message_and_huge_strings_are_refused(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    async with running_gateway(kafka_bootstrap, database_url, topics) as (_, channel):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        # Over GATEWAY_MAX_MESSAGE_BYTES (64 KiB): gRPC refuses it before any handler runs.
        huge = completion("big")
        huge.grade = "A"
        huge.evidence_url = "https://certs.example.org/" + "x" * 70_000
        failed = await submit_fails(stub, huge, tokens["swayam"])
        assert failed.code() in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.INVALID_ARGUMENT,
        )

        # Inside the limit, but far longer than each field allows.
        long_id = completion("y" * 10_000)
        failed = await submit_fails(stub, long_id, tokens["swayam"])
        assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "completion.completion_id" in violations(failed)

        long_url = completion("long-url")
        long_url.evidence_url = "https://certs.example.org/" + "z" * 10_000
        failed = await submit_fails(stub, long_url, tokens["swayam"])
        assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(failed) == ["completion.evidence_url"]

        long_course = completion("long-course", course_id="c" * 10_000)
        failed = await submit_fails(stub, long_course, tokens["swayam"])
        assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(failed) == ["completion.course_id"]

        # The gateway still serves a valid request after all that.
        ok = await stub.SubmitCompletion(
            pb.SubmitCompletionRequest(completion=completion("after-big")),
            metadata=auth(tokens["swayam"]),
        )
        assert ok.status == pb.ACCEPTANCE_STATUS_ACCEPTED

    records = await read_topic(kafka_bootstrap, topics.completions, 1)
    assert [decode_completion_event(r.value).completion_id for r in records] == ["after-big"]


# 2. invalid UTF-8 -------------------------------------------------------------------------------


async def test_invalid_utf8_in_a_string_field_is_refused(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    valid = completion("placeholder")
    valid.ClearField("completion_id")
    # Completion.completion_id (field 1) = b"bad\xff\xfe", then the rest of a valid completion;
    # wrapped as SubmitCompletionRequest.completion (field 1).
    inner = raw_field(1, b"bad\xff\xfe") + valid.SerializeToString()
    raw = raw_field(1, inner)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")

    async with running_gateway(kafka_bootstrap, database_url, topics) as (_, channel):
        call = channel.unary_unary(
            SUBMIT,
            request_serializer=lambda b: b,
            response_deserializer=pb.SubmitCompletionResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await call(raw, metadata=auth(tokens["swayam"]))
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(failed.value) == ["request"]

        # The same bytes with valid UTF-8 in that field are accepted by the same raw call:
        # the refusal above is about the encoding, not about the hand-made framing.
        fine = raw_field(1, raw_field(1, b"utf8-ok") + valid.SerializeToString())
        accepted = await call(fine, metadata=auth(tokens["swayam"]))
        assert accepted.status == pb.ACCEPTANCE_STATUS_ACCEPTED

    records = await read_topic(kafka_bootstrap, topics.completions, 1)
    assert [decode_completion_event(r.value).completion_id for r in records] == ["utf8-ok"]


# 3. timestamps ----------------------------------------------------------------------------------


async def test_out_of_range_timestamps_are_refused(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    far_future = Timestamp()
    far_future.FromDatetime(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    far_past = Timestamp()
    far_past.FromDatetime(datetime(1, 1, 1, tzinfo=UTC))
    cases = {
        "future": far_future,
        "past": far_past,
        "seconds-too-big": Timestamp(seconds=2**62),
        "seconds-too-small": Timestamp(seconds=-(2**62)),
        "nanos-out-of-range": Timestamp(seconds=1_767_225_600, nanos=2_000_000_000),
        "negative-nanos": Timestamp(seconds=1_767_225_600, nanos=-1),
    }
    async with running_gateway(kafka_bootstrap, database_url, topics) as (_, channel):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        for name, stamp in cases.items():
            c = completion(f"ts-{name}")
            c.completed_at.CopyFrom(stamp)
            failed = await submit_fails(stub, c, tokens["swayam"])
            assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert violations(failed) == ["completion.completed_at"], name
    assert await topic_is_empty(kafka_bootstrap, topics.completions)


# 4. admin: absurd hours and levels --------------------------------------------------------------


async def test_admin_refuses_absurd_hours_and_unknown_levels(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    port = free_port()
    admin = auth(tokens["admin"])
    async with (
        running_ledger(kafka_bootstrap, database_url, topics, grpc_port=port),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        await channel.channel_ready()
        stub = ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel)

        def course(course_id: str, **fields: Any) -> ledger_admin_pb2.CreateCourseRequest:
            values: dict[str, Any] = {
                "course_id": course_id,
                "issuer_id": "swayam",
                "title": "Hostile",
                "level": common_pb2.NCRF_LEVEL_6,
                "notional_hours": 60,
            } | fields
            return ledger_admin_pb2.CreateCourseRequest(course=common_pb2.Course(**values))

        for hours in (0, 9601, 10**9, 2**32 - 1):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.CreateCourse(course(f"h-{hours}", notional_hours=hours), metadata=admin)
            assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT, hours
            assert violations(failed.value) == ["course.notional_hours"], hours

        for level in (0, 99, 2**31 - 1, -1):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.CreateCourse(course(f"l-{level}", level=level), metadata=admin)
            assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT, level
            assert violations(failed.value) == ["course.level"], level

        connection = await asyncpg.connect(database_url)
        try:
            stored = await connection.fetchval(
                "SELECT count(*) FROM courses WHERE course_id LIKE 'h-%' OR course_id LIKE 'l-%'"
            )
        finally:
            await connection.close()
        assert stored == 0

        # The limits themselves are accepted.
        created = await stub.CreateCourse(course("h-max", notional_hours=9600), metadata=admin)
        assert created.course.notional_hours == 9600


# 5. SQL and log injection -----------------------------------------------------------------------


async def test_injection_strings_are_refused_or_stored_verbatim(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    connection = await asyncpg.connect(database_url)
    accepted_ids: list[str] = []
    accepted_grades: dict[str, str] = {}
    refused: list[tuple[str, str, list[str]]] = []
    try:
        with json_logs() as logs:
            async with (
                running_gateway(kafka_bootstrap, database_url, topics) as (_, channel),
                running_ledger(kafka_bootstrap, database_url, topics),
            ):
                stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
                for n, hostile in enumerate(HOSTILE):
                    tries = {
                        "completion_id": completion(hostile),
                        "course_id": completion(f"inj-course-{n}", course_id=hostile),
                        "evidence_url": completion(f"inj-url-{n}"),
                        "grade": completion(f"inj-grade-{n}"),
                    }
                    for c in tries.values():
                        c.evidence_url = "https://certs.example.org/cert"
                    tries["evidence_url"].evidence_url = hostile
                    tries["grade"].grade = hostile  # replaces the score (a oneof)
                    for field, c in tries.items():
                        request = pb.SubmitCompletionRequest(completion=c)
                        response, error = await outcome(
                            stub.SubmitCompletion(request, metadata=auth(tokens["swayam"]))
                        )
                        if error is not None:
                            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (
                                field,
                                hostile,
                            )
                            fields = violations(error)
                            assert f"completion.{field}" in fields, (field, hostile, fields)
                            refused.append((field, hostile, fields))
                            continue
                        assert response.status == pb.ACCEPTANCE_STATUS_ACCEPTED
                        accepted_ids.append(c.completion_id)
                        if field == "grade":
                            accepted_grades[c.completion_id] = c.grade

                async def appended() -> bool:
                    count = await connection.fetchval(
                        "SELECT count(*) FROM credit_log WHERE completion_id = ANY($1::text[])",
                        accepted_ids,
                    )
                    return bool(count == len(accepted_ids))

                await eventually(appended, timeout=30, what="the accepted completions")
        events = assert_one_json_object_per_line(logs.getvalue())
        assert any(e.get("event") == "gateway_started" for e in events)

        # Control characters are never accepted; the printable SQL string is stored verbatim.
        assert {h for f, h, _ in refused if f == "completion_id"} == {HOSTILE[1], HOSTILE[2]}
        assert "'; DROP TABLE credit_log; --" in accepted_ids
        stored = await connection.fetch(
            "SELECT completion_id FROM credit_log WHERE completion_id = ANY($1::text[])",
            accepted_ids,
        )
        assert sorted(r["completion_id"] for r in stored) == sorted(accepted_ids)
        for completion_id in accepted_ids:
            raw = await connection.fetchval(
                "SELECT convert_to(completion_id, 'UTF8') FROM credit_log WHERE completion_id = $1",
                completion_id,
            )
            assert raw == completion_id.encode()
        assert await connection.fetchval("SELECT to_regclass('credit_log') IS NOT NULL")
        assert await connection.fetchval("SELECT count(*) FROM credit_log") >= len(accepted_ids)
    finally:
        await connection.close()

    # Accepted grades travel to the topic unchanged.
    records = await read_topic(kafka_bootstrap, topics.completions, len(accepted_ids))
    on_topic = {
        e.completion_id: e
        for e in (decode_completion_event(r.value) for r in records)
        if isinstance(e, CompletionSubmitted)
    }
    for completion_id, grade in accepted_grades.items():
        assert on_topic[completion_id].grade == grade


async def test_admin_injection_strings_are_refused_or_stored_verbatim(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    port = free_port()
    admin = auth(tokens["admin"])
    connection = await asyncpg.connect(database_url)
    outcomes: list[tuple[str, str, str]] = []
    try:
        with json_logs() as logs:
            async with (
                running_ledger(kafka_bootstrap, database_url, topics, grpc_port=port),
                grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            ):
                await channel.channel_ready()
                stub = ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel)
                for n, hostile in enumerate(HOSTILE):
                    attempts: list[tuple[str, Any, Any, str, str]] = [
                        (
                            "issuer.issuer_id",
                            stub.CreateIssuer,
                            ledger_admin_pb2.CreateIssuerRequest(
                                issuer=ledger_admin_pb2.Issuer(issuer_id=hostile)
                            ),
                            "SELECT issuer_id FROM issuers WHERE issuer_id = $1",
                            hostile,
                        ),
                        (
                            "issuer.display_name",
                            stub.CreateIssuer,
                            ledger_admin_pb2.CreateIssuerRequest(
                                issuer=ledger_admin_pb2.Issuer(
                                    issuer_id=f"inj-{n}", display_name=hostile
                                )
                            ),
                            "SELECT display_name FROM issuers WHERE issuer_id = $1",
                            f"inj-{n}",
                        ),
                        (
                            "course.title",
                            stub.CreateCourse,
                            ledger_admin_pb2.CreateCourseRequest(
                                course=common_pb2.Course(
                                    course_id=f"inj-course-{n}",
                                    issuer_id="swayam",
                                    title=hostile,
                                    level=common_pb2.NCRF_LEVEL_6,
                                    notional_hours=30,
                                )
                            ),
                            "SELECT title FROM courses WHERE course_id = $1",
                            f"inj-course-{n}",
                        ),
                    ]
                    for field, method, request, query, key in attempts:
                        _, error = await outcome(method(request, metadata=admin))
                        if error is not None:
                            outcomes.append((field, hostile, error.code().name))
                            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (
                                field,
                                hostile,
                                error.code(),
                                error.details(),
                            )
                            assert violations(error), (field, hostile)
                            if "\x00" not in key:  # PostgreSQL text cannot hold a NUL at all
                                assert await connection.fetchval(query, key) is None
                            continue
                        outcomes.append((field, hostile, "OK"))
                        stored = await connection.fetchval(query, key)
                        assert stored == hostile, (field, hostile, stored)
        assert_one_json_object_per_line(logs.getvalue())
        assert await connection.fetchval("SELECT to_regclass('credit_log') IS NOT NULL")
    finally:
        await connection.close()
    # The ids' character rules refuse every hostile issuer id.
    assert [o for o in outcomes if o[0] == "issuer.issuer_id" and o[2] == "OK"] == []


async def test_nul_in_course_id_is_invalid_argument(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    async with running_gateway(kafka_bootstrap, database_url, topics) as (_, channel):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        failed = await submit_fails(
            stub, completion("nul-course", course_id="ml\x00101"), tokens["swayam"]
        )
        assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT, failed.details()
        assert violations(failed) == ["completion.course_id"]


@pytest.mark.parametrize("field", ["issuer_id", "display_name", "title"])
async def test_admin_nul_is_invalid_argument(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str], field: str
) -> None:
    port = free_port()
    async with (
        running_ledger(kafka_bootstrap, database_url, topics, grpc_port=port),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        await channel.channel_ready()
        stub = ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel)
        if field == "title":
            call = stub.CreateCourse(
                ledger_admin_pb2.CreateCourseRequest(
                    course=common_pb2.Course(
                        course_id="nul-title",
                        issuer_id="swayam",
                        title="a\x00b",
                        level=common_pb2.NCRF_LEVEL_6,
                        notional_hours=30,
                    )
                ),
                metadata=auth(tokens["admin"]),
            )
        else:
            issuer = {"issuer_id": "nul-issuer", field: "a\x00b"}
            call = stub.CreateIssuer(
                ledger_admin_pb2.CreateIssuerRequest(issuer=ledger_admin_pb2.Issuer(**issuer)),
                metadata=auth(tokens["admin"]),
            )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await call
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT, failed.value.details()
        assert violations(failed.value)


# 6. dead letters --------------------------------------------------------------------------------


async def test_undecodable_and_future_schema_records_are_dead_lettered(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    valid = ledger_completion("444444444444", "dlq-valid")
    future = events_pb2.CompletionEvent.FromString(
        encode_completion_event(ledger_completion("444444444444", "dlq-future"))
    )
    future.envelope.schema_version = 99
    future.envelope.event_id = str(uuid.uuid4())
    garbage = b"\xff\xfe\x00 not a protobuf \x07"
    await produce(
        kafka_bootstrap,
        topics.completions,
        [
            (b"444444444444", garbage),
            (b"444444444444", future.SerializeToString()),
            valid,
        ],
    )
    connection = await asyncpg.connect(database_url)
    try:
        async with running_ledger(kafka_bootstrap, database_url, topics):

            async def settled() -> bool:
                appended = await connection.fetchval(
                    "SELECT count(*) FROM credit_log WHERE completion_id = 'dlq-valid'"
                )
                rejected = await connection.fetchval(
                    "SELECT count(*) FROM rejections WHERE source_topic = $1", topics.completions
                )
                return bool(appended == 1 and rejected == 2)

            await eventually(settled, timeout=30, what="1 entry and 2 rejections")
            rows = await connection.fetch(
                "SELECT reason, original_value FROM rejections WHERE source_topic = $1 "
                "ORDER BY source_offset",
                topics.completions,
            )
            assert [(r["reason"], bytes(r["original_value"])) for r in rows] == [
                ("not_protobuf", garbage),
                ("unsupported_schema_version", future.SerializeToString()),
            ]
    finally:
        await connection.close()

    dead = await read_topic(kafka_bootstrap, topics.completions_dlq, 2, timeout=30)
    letters = {
        events_pb2.DeadLetter.FromString(r.value).reason: events_pb2.DeadLetter.FromString(r.value)
        for r in dead
    }
    assert set(letters) == {"not_protobuf", "unsupported_schema_version"}
    assert letters["not_protobuf"].original_value == garbage
    assert letters["unsupported_schema_version"].original_value == future.SerializeToString()
    assert all(d.source_topic == topics.completions for d in letters.values())
    for record in dead:
        reason = dict(record.headers)["reason"].decode()
        assert reason == events_pb2.DeadLetter.FromString(record.value).reason
