"""Pure validation rules of the issuer gateway (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message_factory import GetMessageClass
from hypothesis import given, settings
from hypothesis import strategies as st

from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.domain.events import Result, completion_event_id
from learnerledger.gateway.validation import (
    string_violations,
    validate_completion,
    validate_revocation_request,
)
from learnerledger.v1 import common_pb2, events_pb2, issuer_gateway_pb2
from learnerledger.wire.events import completion_from_proto

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)
COURSES = {
    "ml-101": Course("ml-101", "swayam", "ML", Decimal("5.5"), 90, CreditRecommendation.APPROVED)
}


def good(**overrides: object) -> common_pb2.Completion:
    c = common_pb2.Completion(
        completion_id="c-1",
        learner_id="123456789012",
        course_id="ml-101",
        result=common_pb2.COMPLETION_RESULT_PASS,
        score=80.0,
        evidence_url="https://certs.example.org/c-1",
    )
    c.completed_at.FromDatetime(NOW - timedelta(days=1))
    for key, value in overrides.items():
        setattr(c, key, value)
    return c


def fields(c: common_pb2.Completion, courses: dict[str, Course] | None = COURSES) -> list[str]:
    return [v.field for v in validate_completion(c, courses=courses, now=NOW, clock_skew=SKEW)]


def test_a_good_completion_has_no_violations_and_maps_to_the_domain() -> None:
    c = good()
    assert fields(c) == []
    event = completion_from_proto(c, issuer_id="swayam", now=NOW)
    assert event.envelope.event_id == completion_event_id("swayam", "c-1")
    assert event.envelope.learner_id == "123456789012"
    assert event.result is Result.PASS
    assert event.score == 80.0
    assert event.grade is None


def test_every_violation_is_reported_at_once() -> None:
    c = common_pb2.Completion(
        completion_id="",
        learner_id="12345",
        course_id="nope",
        score=150.0,
        evidence_url="ftp://x",
    )
    assert sorted(fields(c)) == sorted(
        [
            "completion.completion_id",
            "completion.learner_id",
            "completion.course_id",
            "completion.completed_at",
            "completion.result",
            "completion.score",
            "completion.evidence_url",
        ]
    )


def test_time_bounds_with_clock_skew() -> None:
    c = good()
    c.completed_at.FromDatetime(NOW + SKEW - timedelta(seconds=1))
    assert fields(c) == []
    c.completed_at.FromDatetime(NOW + SKEW + timedelta(seconds=1))
    assert fields(c) == ["completion.completed_at"]
    c.completed_at.FromDatetime(datetime(1999, 12, 31, tzinfo=UTC))
    assert fields(c) == ["completion.completed_at"]


def test_score_and_grade_consistency() -> None:
    assert fields(good(score=0.0)) == ["completion.score"]  # a PASS with 0
    assert fields(good(score=float("nan"))) == ["completion.score"]
    fail = good(result=common_pb2.COMPLETION_RESULT_FAIL, score=100.0)
    assert fields(fail) == ["completion.score"]
    assert fields(good(grade="F")) == ["completion.grade"]  # a PASS graded F
    assert fields(good(result=common_pb2.COMPLETION_RESULT_FAIL, grade="F")) == []
    assert fields(good(grade="A+")) == []
    assert fields(good(grade="")) == ["completion.grade"]


def test_ids_and_urls() -> None:
    assert fields(good(completion_id="x" * 129)) == ["completion.completion_id"]
    assert fields(good(completion_id="bad\nid")) == ["completion.completion_id"]
    assert fields(good(learner_id="12345678901a")) == ["completion.learner_id"]
    assert fields(good(evidence_url="https://" + "a" * 2050)) == ["completion.evidence_url"]
    assert fields(good(evidence_url="https:///nohost")) == ["completion.evidence_url"]
    assert fields(good(evidence_url="https://ex.org/a b")) == ["completion.evidence_url"]
    assert fields(good(evidence_url="")) == []
    assert fields(good(course_id="unknown")) == ["completion.course_id"]
    assert fields(good(course_id="unknown"), courses=None) == []  # catalog check skipped


@settings(max_examples=200, deadline=None)
@given(
    completion_id=st.text(max_size=140),
    learner_id=st.text(alphabet="0123456789ab", max_size=14),
    score=st.floats(allow_nan=True, allow_infinity=True),
    passed=st.booleans(),
    url=st.text(max_size=40),
)
def test_validation_never_crashes_and_valid_means_mappable(
    completion_id: str, learner_id: str, score: float, passed: bool, url: str
) -> None:
    c = good(
        completion_id=completion_id,
        learner_id=learner_id,
        score=score,
        result=common_pb2.COMPLETION_RESULT_PASS if passed else common_pb2.COMPLETION_RESULT_FAIL,
        evidence_url=url,
    )
    violations = validate_completion(c, courses=COURSES, now=NOW, clock_skew=SKEW)
    names = {v.field for v in violations}
    assert ("completion.learner_id" in names) != (
        len(learner_id) == 12 and learner_id.isdigit() and learner_id.isascii()
    )
    assert ("completion.completion_id" in names) != (
        1 <= len(completion_id) <= 128 and completion_id.isprintable()
    )
    if not violations:
        event = completion_from_proto(c, issuer_id="swayam", now=NOW)
        assert event.completion_id == completion_id
        assert 0 <= (event.score or 0) <= 100


async def test_bearer_authenticator_caches_by_token_and_refuses_bad_credentials() -> None:
    import grpc
    import pytest

    from learnerledger.postgres.catalog import Principal, PrincipalKind
    from learnerledger.rpc.auth import BearerAuthenticator, bearer_token
    from learnerledger.rpc.errors import RpcFailure

    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([]) is None
    calls: list[str] = []

    async def lookup(token: str) -> Principal | None:
        calls.append(token)
        return Principal(PrincipalKind.ISSUER, "swayam") if token == "good" else None

    now = [0.0]
    authenticator = BearerAuthenticator(lookup, ttl_s=10, clock=lambda: now[0])
    for _ in range(3):
        principal = await authenticator.require(
            [("authorization", "Bearer good")], PrincipalKind.ISSUER
        )
        assert principal.principal_id == "swayam"
    assert calls == ["good"]
    now[0] = 11.0
    await authenticator.principal([("authorization", "Bearer good")])
    assert calls == ["good", "good"]
    with pytest.raises(RpcFailure) as failed:
        await authenticator.principal([("authorization", "Bearer bad")])
    assert failed.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert "bad" not in failed.value.message.split()
    with pytest.raises(RpcFailure) as failed:
        await authenticator.require([("authorization", "Bearer good")], PrincipalKind.UNIVERSITY)
    assert failed.value.code is grpc.StatusCode.PERMISSION_DENIED


def test_rich_status_carries_every_detail() -> None:
    import grpc
    from google.rpc import error_details_pb2

    from learnerledger.rpc.errors import DOMAIN, RpcFailure, Violation, decode_details

    failure = RpcFailure(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "slow down",
        reason="RATE_LIMITED",
        violations=[Violation("a", "b")],
        retry_after_s=1.25,
    )
    status = failure.status()
    assert status.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    details = decode_details(status.trailing_metadata)
    info, bad, retry = details
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("RATE_LIMITED", DOMAIN)
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert bad.field_violations[0].field == "a"
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToMilliseconds() == 1250


def _string_field_paths(descriptor: Descriptor, prefix: str = "") -> list[str]:
    """Dotted paths of every singular string field reachable from ``descriptor``."""
    paths: list[str] = []
    for field in descriptor.fields:
        if field.is_repeated:
            continue
        if field.type == FieldDescriptor.TYPE_STRING:
            paths.append(prefix + field.name)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name.startswith(
            "learnerledger."
        ):
            paths += _string_field_paths(field.message_type, f"{prefix}{field.name}.")
    return paths


def test_a_control_character_in_any_string_field_of_any_gateway_request_is_named() -> None:
    """Built from the service descriptor, so a field or method added later is covered too."""
    service = issuer_gateway_pb2.DESCRIPTOR.services_by_name["IssuerGatewayService"]
    checked = []
    for method in service.methods:
        request_class = GetMessageClass(method.input_type)
        for path in _string_field_paths(method.input_type):
            request = request_class()
            *parents, name = path.split(".")
            target = request
            for parent in parents:
                target = getattr(target, parent)
            setattr(target, name, "ok\x00")
            assert [v.field for v in string_violations(request)] == [path]
            checked.append(f"{method.name}:{path}")
    assert "RevokeCompletion:reason" in checked
    assert "SubmitCompletion:completion.course_id" in checked
    assert "StreamCompletions:completion.grade" in checked


def test_the_string_walk_covers_repeated_fields_and_reports_nothing_for_clean_text() -> None:
    event = events_pb2.CompletionEvent()
    event.completion_submitted.evidence_urls[:] = ["https://ok.example", "https://x\x07"]
    assert [v.field for v in string_violations(event)] == ["completion_submitted.evidence_urls[1]"]
    clean = issuer_gateway_pb2.RevokeCompletionRequest(completion_id="c-1", reason="é ✓ — ok")
    assert string_violations(clean) == []


def test_revocation_request_names_a_control_character_in_reason() -> None:
    request = issuer_gateway_pb2.RevokeCompletionRequest(
        completion_id="c-1", reason="issued\x00in error", learner_id="123456789012"
    )
    assert [v.field for v in validate_revocation_request(request)] == ["reason"]
