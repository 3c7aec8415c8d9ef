"""The issuer gateway on real Kafka and PostgreSQL, served in-process on a free port."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from learnerledger.domain.events import CompletionSubmitted, completion_event_id
from learnerledger.gateway.service import SERVICE_NAME
from learnerledger.kafka.codec import decode_completion_event
from learnerledger.kafka.producer import header
from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import common_pb2, issuer_gateway_pb2, issuer_gateway_pb2_grpc
from tests.support.gateway import ALICE, BOB, auth, completion, running_gateway, self_signed_cert
from tests.support.ledger import eventually, read_topic, running_ledger

pytestmark = pytest.mark.integration

pb = issuer_gateway_pb2
STREAM_SIZE = int(os.environ.get("GATEWAY_TEST_STREAM_SIZE", "10000"))


async def test_unary_submission_is_on_the_topic_keyed_by_learner_and_retries_keep_the_id(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    async with running_gateway(kafka_bootstrap, database_url, topics) as (_, channel):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        sent = completion("u-1")
        first = await stub.SubmitCompletion(
            pb.SubmitCompletionRequest(completion=sent), metadata=auth(tokens["swayam"])
        )
        retry = await stub.SubmitCompletion(
            pb.SubmitCompletionRequest(completion=sent), metadata=auth(tokens["swayam"])
        )
        assert first.status == pb.ACCEPTANCE_STATUS_ACCEPTED
        assert first.event_id == retry.event_id == str(completion_event_id("swayam", "u-1"))
        # The ledger has not decided it (it is not running): this process remembers the ack.
        status = await stub.GetCompletionStatus(
            pb.GetCompletionStatusRequest(completion_id="u-1"), metadata=auth(tokens["swayam"])
        )
        assert status.state == pb.COMPLETION_STATE_ACCEPTED
        assert status.learner_id == ALICE

    records = await read_topic(kafka_bootstrap, topics.completions, 2)
    assert len(records) == 2
    for record in records:
        assert record.key == ALICE.encode()
        assert (header(record.headers, "traceparent") or "").startswith("00-")
        event = decode_completion_event(record.value)
        assert isinstance(event, CompletionSubmitted)
        assert str(event.envelope.event_id) == first.event_id
        assert event.envelope.issuer_id == "swayam"
        assert (event.completion_id, event.course_id, event.score) == ("u-1", "ml-101", 82.5)
        assert event.evidence_url == sent.evidence_url
        assert event.completed_at == datetime(2026, 3, 1, 12, tzinfo=UTC)


async def test_a_stream_acks_every_item_in_order_and_rejects_only_the_bad_ones(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    async def requests() -> AsyncIterator[pb.StreamCompletionsRequest]:
        for i in range(STREAM_SIZE):
            learner = f"{100000000000 + i % 97}"
            c = completion(f"s-{i}", learner_id=learner if i % 100 != 99 else "not-an-apaar")
            yield pb.StreamCompletionsRequest(completion=c)

    async with running_gateway(kafka_bootstrap, database_url, topics, max_in_flight=64) as (
        _,
        channel,
    ):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        started = time.monotonic()
        responses = [
            r async for r in stub.StreamCompletions(requests(), metadata=auth(tokens["swayam"]))
        ]
        elapsed = time.monotonic() - started

    bad = STREAM_SIZE // 100
    assert [r.completion_id for r in responses] == [f"s-{i}" for i in range(STREAM_SIZE)]
    accepted = [r for r in responses if r.status == pb.ACCEPTANCE_STATUS_ACCEPTED]
    rejected = [r for r in responses if r.status == pb.ACCEPTANCE_STATUS_REJECTED]
    assert (len(accepted), len(rejected)) == (STREAM_SIZE - bad, bad)
    for r in rejected:
        assert r.reason == "INVALID_ARGUMENT"
        assert [v.field for v in r.field_violations] == ["completion.learner_id"]
        assert r.event_id == ""
    records = await read_topic(kafka_bootstrap, topics.completions, len(accepted))
    assert len(records) == len(accepted)
    assert {decode_completion_event(r.value).envelope.event_id for r in records} == {
        completion_event_id("swayam", r.completion_id) for r in accepted
    }
    for record in records:
        assert decode_completion_event(record.value).envelope.learner_id == record.key.decode()
    print(f"streamed {STREAM_SIZE} in {elapsed:.2f}s ({STREAM_SIZE / elapsed:.0f}/s)")


async def test_auth_and_authorization_codes(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    async with running_gateway(kafka_bootstrap, database_url, topics) as (_, channel):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        request = pb.SubmitCompletionRequest(completion=completion("a-1"))
        for metadata in ((), auth("llI_wrong_token"), (("authorization", "Basic abc"),)):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.SubmitCompletion(request, metadata=metadata)
            assert failed.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "llI_wrong_token" not in (failed.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.SubmitCompletion(request, metadata=auth(tokens["du"]))
        assert failed.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # Another issuer's course is answered as an unknown one: the same code, message and
        # details (ErrorInfo reason, field violation), with the course id in place.
        answers = []
        for course_id in ("os-301", "no-such-course"):
            request = pb.SubmitCompletionRequest(completion=completion("a-2", course_id=course_id))
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.SubmitCompletion(request, metadata=auth(tokens["swayam"]))
            details = [str(d) for d in decode_details(failed.value.trailing_metadata())]
            answers.append(
                [
                    text.replace(course_id, "<course>")
                    for text in (failed.value.code().name, failed.value.details(), *details)
                ]
            )
        assert answers[0] == answers[1]
        assert answers[0][0] == "INVALID_ARGUMENT"
        assert 'reason: "INVALID_ARGUMENT"' in answers[0][2]

        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.GetCompletionStatus(
                pb.GetCompletionStatusRequest(completion_id="never-sent"),
                metadata=auth(tokens["swayam"]),
            )
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_request_lists_every_violation(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    async with running_gateway(kafka_bootstrap, database_url, topics) as (_, channel):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        c = common_pb2.Completion(
            completion_id="b-1", learner_id="123", course_id="no-such-course", score=101.0
        )
        c.completed_at.FromDatetime(datetime.now(UTC) + timedelta(days=2))
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.SubmitCompletion(
                pb.SubmitCompletionRequest(completion=c), metadata=auth(tokens["swayam"])
            )
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        [bad] = [
            d
            for d in decode_details(failed.value.trailing_metadata())
            if isinstance(d, error_details_pb2.BadRequest)
        ]
        assert sorted(v.field for v in bad.field_violations) == [
            "completion.completed_at",
            "completion.course_id",
            "completion.learner_id",
            "completion.result",
            "completion.score",
        ]
    # nothing invalid reached Kafka
    records = await read_topic(kafka_bootstrap, topics.completions, 0, timeout=5)
    assert records == []


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"completion_id": "l-1", "reason": "issued\x00in error"}, "reason"),
        ({"completion_id": "l-1", "reason": "issued in error\x1b[2J"}, "reason"),
        ({"completion_id": "l\x00-1", "reason": "issued in error"}, "completion_id"),
    ],
)
async def test_a_control_character_in_any_revocation_field_is_invalid_argument_naming_it(
    kafka_bootstrap: str,
    database_url: str,
    topics: Any,
    tokens: dict[str, str],
    request_fields: dict[str, str],
    field: str,
) -> None:
    """The ledger cannot store a NUL (jsonb refuses it): the gateway refuses it up front, in
    every string field of the request, and nothing reaches Kafka."""
    async with running_gateway(kafka_bootstrap, database_url, topics) as (_, channel):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.RevokeCompletion(
                pb.RevokeCompletionRequest(learner_id=ALICE, **request_fields),
                metadata=auth(tokens["swayam"]),
            )
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        [bad] = [
            d
            for d in decode_details(failed.value.trailing_metadata())
            if isinstance(d, error_details_pb2.BadRequest)
        ]
        assert [v.field for v in bad.field_violations] == [field]
    records = await read_topic(kafka_bootstrap, topics.completions, 0, timeout=5)
    assert records == []


async def test_rate_limit_gives_resource_exhausted_with_retry_info(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    async with running_gateway(
        kafka_bootstrap, database_url, topics, rate_limit_per_s=0.5, rate_limit_burst=2
    ) as (_, channel):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        for i in range(2):
            await stub.SubmitCompletion(
                pb.SubmitCompletionRequest(completion=completion(f"r-{i}")),
                metadata=auth(tokens["swayam"]),
            )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.SubmitCompletion(
                pb.SubmitCompletionRequest(completion=completion("r-2")),
                metadata=auth(tokens["swayam"]),
            )
        assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        [retry] = [
            d
            for d in decode_details(failed.value.trailing_metadata())
            if isinstance(d, error_details_pb2.RetryInfo)
        ]
        assert retry.retry_delay.ToTimedelta() > timedelta(0)

        async def one() -> AsyncIterator[pb.StreamCompletionsRequest]:
            yield pb.StreamCompletionsRequest(completion=completion("r-3"))

        [answer] = [r async for r in stub.StreamCompletions(one(), metadata=auth(tokens["swayam"]))]
        assert answer.status == pb.ACCEPTANCE_STATUS_REJECTED
        assert answer.reason == "RESOURCE_EXHAUSTED"


async def test_health_and_reflection(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    async with running_gateway(kafka_bootstrap, database_url, topics) as (_, channel):
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        [listing] = [r async for r in reflection.ServerReflectionInfo(ask())]
        names = {s.name for s in listing.list_services_response.service}
        assert SERVICE_NAME in names
        assert "grpc.health.v1.Health" in names


async def test_status_follows_the_ledger_through_credit_and_revocation(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    async with (
        running_ledger(kafka_bootstrap, database_url, topics),
        running_gateway(kafka_bootstrap, database_url, topics) as (_, channel),
    ):
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        md = auth(tokens["swayam"])
        await stub.SubmitCompletion(
            pb.SubmitCompletionRequest(completion=completion("l-1", learner_id=BOB)),
            metadata=md,
        )
        await stub.SubmitCompletion(
            pb.SubmitCompletionRequest(
                completion=completion("l-2", learner_id=BOB, course_id="db-201")
            ),
            metadata=md,
        )
        await stub.SubmitCompletion(
            pb.SubmitCompletionRequest(
                completion=completion("l-3", learner_id=BOB, course_id="ml-101", grade="B")
            ),
            metadata=md,
        )

        async def state(cid: str) -> pb.GetCompletionStatusResponse:
            answer: pb.GetCompletionStatusResponse = await stub.GetCompletionStatus(
                pb.GetCompletionStatusRequest(completion_id=cid), metadata=md
            )
            return answer

        async def decided() -> bool:
            return (await state("l-2")).state != pb.COMPLETION_STATE_ACCEPTED

        await eventually(decided, what="the ledger to decide l-2")
        credited = await state("l-1")
        assert credited.state == pb.COMPLETION_STATE_CREDITED
        assert (credited.credits, credited.learner_id) == (3.0, BOB)
        assert credited.ledger_sequence >= 1
        assert credited.ledger_position >= 1
        without = await state("l-2")
        assert without.state == pb.COMPLETION_STATE_RECORDED_WITHOUT_CREDIT
        assert without.reason == "course_not_approved"

        # revocation: the learner is looked up in the ledger (no learner_id needed)
        revoked = await stub.RevokeCompletion(
            pb.RevokeCompletionRequest(completion_id="l-1", reason="issued in error"),
            metadata=md,
        )
        assert revoked.status == pb.ACCEPTANCE_STATUS_ACCEPTED

        async def is_revoked() -> bool:
            return (await state("l-1")).state == pb.COMPLETION_STATE_REVOKED

        await eventually(is_revoked, what="the revocation of l-1")
        assert (await state("l-1")).credits == 3.0
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.RevokeCompletion(
                pb.RevokeCompletionRequest(completion_id="nothing", reason="x"), metadata=md
            )
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND


async def test_mutual_tls_from_files(tmp_path: Any) -> None:
    """The shared server bootstrap: TLS with a required, verified client certificate."""
    from cryptography.hazmat.primitives import serialization

    from learnerledger.rpc.server import TlsFiles, start_server

    def pem(cert: Any, key: Any, stem: str) -> tuple[bytes, bytes]:
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (tmp_path / f"{stem}.crt").write_bytes(cert_pem)
        (tmp_path / f"{stem}.key").write_bytes(key_pem)
        return cert_pem, key_pem

    ca = self_signed_cert("test-ca", ca=True)
    ca_pem, _ = pem(*ca, "ca")
    pem(*self_signed_cert("localhost", issuer=ca), "server")
    client_pem, client_key_pem = pem(*self_signed_cert("partner", issuer=ca), "client")

    running = await start_server(
        register=lambda _server: None,
        service_names=[],
        bind="127.0.0.1",
        port=0,
        tls=TlsFiles(tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "ca.crt"),
    )
    try:
        target = f"127.0.0.1:{running.port}"
        good = grpc.ssl_channel_credentials(ca_pem, client_key_pem, client_pem)
        async with grpc.aio.secure_channel(target, good) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        anonymous = grpc.ssl_channel_credentials(ca_pem)
        async with grpc.aio.secure_channel(target, anonymous) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(1)


async def test_a_reflection_only_client_can_call_the_gateway_with_a_token(
    kafka_bootstrap: str, database_url: str, topics: Any, tokens: dict[str, str]
) -> None:
    """What grpcurl does: learn the contract from the server, then call it (no generated code)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

    async with running_gateway(kafka_bootstrap, database_url, topics) as (_, channel):
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME)

        [answer] = [r async for r in reflection.ServerReflectionInfo(ask())]
        pool = descriptor_pool.DescriptorPool()
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in answer.file_descriptor_response.file_descriptor_proto
        ]
        pending = {f.name: f for f in files}
        while pending:  # add each file after its dependencies
            for name, proto in list(pending.items()):
                if all(dep not in pending for dep in proto.dependency):
                    pool.Add(proto)
                    del pending[name]
        method = pool.FindServiceByName(SERVICE_NAME).FindMethodByName("SubmitCompletion")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        request = json_format.ParseDict(
            {
                "completion": {
                    "completionId": "reflected-1",
                    "learnerId": ALICE,
                    "courseId": "ml-101",
                    "completedAt": "2026-03-01T10:00:00Z",
                    "result": "COMPLETION_RESULT_PASS",
                    "score": 88,
                    "evidenceUrl": "https://swayam.example/c/reflected-1",
                }
            },
            request_class(),
        )
        call = channel.unary_unary(
            f"/{SERVICE_NAME}/SubmitCompletion",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        response = await call(request, metadata=(("authorization", f"Bearer {tokens['swayam']}"),))
        reply = json_format.MessageToDict(response)
        assert reply["status"] == "ACCEPTANCE_STATUS_ACCEPTED"
        assert reply["eventId"] == str(completion_event_id("swayam", "reflected-1"))
