"""The wire mapping (learnerledger.wire) and the ErrorInfo reasons (rpc.errors.Reason)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from learnerledger.domain.catalog import Course, CourseCategory, CreditRecommendation, HoursBasis
from learnerledger.domain.events import (
    CURRENT_SCHEMA_VERSION,
    CompletionSubmitted,
    ConsentBasis,
    ConsentGrantRequested,
    Envelope,
    Result,
    completion_event_id,
    redemption_event_id,
    revocation_event_id,
)
from learnerledger.domain.redemption import InvalidProgramme
from learnerledger.ledger.admin_api import (
    ALREADY_EXISTS_REASONS,
    NOT_FOUND_REASONS,
    catalog_failure,
)
from learnerledger.postgres.catalog import AlreadyExists, CatalogObject, NotFound
from learnerledger.rpc.errors import Reason
from learnerledger.v1 import common_pb2, events_pb2, issuer_gateway_pb2, redemption_pb2
from learnerledger.wire.catalog import course_from_proto, course_to_proto
from learnerledger.wire.events import (
    InvalidMessage,
    completion_event_from_proto,
    completion_event_to_proto,
    completion_from_proto,
    revocation_from_proto,
)
from learnerledger.wire.instants import InstantOutOfRange, from_timestamp, to_timestamp
from learnerledger.wire.redemptions import (
    programme_from_proto,
    programme_to_proto,
    redemption_request_from_proto,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_reason_values_are_their_upper_snake_case_names() -> None:
    for reason in Reason:
        assert reason.value == reason.name
        assert reason.value.replace("_", "").isalpha()
        assert reason.value.isupper()


@pytest.mark.parametrize("what", list(CatalogObject))
def test_catalog_reasons_are_the_strings_clients_always_got(what: CatalogObject) -> None:
    # Before the enum these were built as f"{what.upper()}_ALREADY_EXISTS" and
    # f"{what.upper().replace(' ', '_')}_NOT_FOUND"; the strings on the wire stay the same (no
    # catalog write raises AlreadyExists of an active token, the one name with a space).
    exists = catalog_failure(AlreadyExists(what, "x-1"))
    missing = catalog_failure(NotFound(what, "x-1"))
    snake = what.value.upper().replace(" ", "_")
    assert exists.reason is ALREADY_EXISTS_REASONS[what]
    assert str(exists.reason) == f"{snake}_ALREADY_EXISTS"
    assert missing.reason is NOT_FOUND_REASONS[what]
    assert str(missing.reason) == f"{snake}_NOT_FOUND"
    assert exists.message == f"{what.value} x-1 already exists"
    assert missing.metadata == {what.value.replace(" ", "_"): "x-1"}


def test_timestamps_round_trip_and_out_of_range_is_refused() -> None:
    assert from_timestamp(to_timestamp(NOW)) == NOW
    with pytest.raises(InstantOutOfRange, match="nanos"):
        from_timestamp(Timestamp(seconds=0, nanos=-1))
    with pytest.raises(InstantOutOfRange, match="between 1000-01-01 and 9000-01-01"):
        from_timestamp(to_timestamp(datetime(9500, 1, 1, tzinfo=UTC)))


def _completion() -> common_pb2.Completion:
    return common_pb2.Completion(
        completion_id="c-1",
        learner_id="123456789012",
        course_id="swayam-ds-101",
        completed_at=to_timestamp(datetime(2026, 5, 1, tzinfo=UTC)),
        result=common_pb2.COMPLETION_RESULT_PASS,
        score=81.5,
        evidence_url="https://swayam.example/c-1",
    )


def test_a_submitted_completion_travels_as_the_same_request() -> None:
    request = completion_from_proto(_completion(), issuer_id="swayam", now=NOW)
    assert request == CompletionSubmitted(
        envelope=Envelope(
            completion_event_id("swayam", "c-1"),
            CURRENT_SCHEMA_VERSION,
            NOW,
            "swayam",
            "123456789012",
        ),
        completion_id="c-1",
        course_id="swayam-ds-101",
        completed_at=datetime(2026, 5, 1, tzinfo=UTC),
        result=Result.PASS,
        score=81.5,
        grade=None,
        evidence_url="https://swayam.example/c-1",
    )
    assert completion_event_from_proto(completion_event_to_proto(request)) == request


def test_consent_grant_round_trips() -> None:
    envelope = Envelope(uuid.uuid4(), CURRENT_SCHEMA_VERSION, NOW, "", "123456789012")
    grant = ConsentGrantRequested(
        envelope,
        "du",
        purpose="admission",
        expire_time=datetime(2027, 1, 1, tzinfo=UTC),
        basis=ConsentBasis.LEARNER,
    )
    assert completion_event_from_proto(completion_event_to_proto(grant)) == grant


@pytest.mark.parametrize(
    ("breakage", "reason", "detail"),
    [
        (lambda e: e.ClearField("envelope"), "missing_envelope", "no envelope"),
        (lambda e: setattr(e.envelope, "event_id", "nope"), "invalid_event_id", "'nope'"),
        (lambda e: e.ClearField("completion_submitted"), "missing_event", "no event"),
        (
            lambda e: e.completion_submitted.completion.ClearField("completed_at"),
            "invalid_field",
            "completion.completed_at is not set",
        ),
        (
            lambda e: setattr(e.completion_submitted.completion, "learner_id", "999999999999"),
            "invalid_field",
            "differs from envelope",
        ),
    ],
)
def test_an_invalid_event_names_its_reason(breakage: object, reason: str, detail: str) -> None:
    event = completion_event_to_proto(
        completion_from_proto(_completion(), issuer_id="swayam", now=NOW)
    )
    assert callable(breakage)
    breakage(event)
    with pytest.raises(InvalidMessage, match=detail) as raised:
        completion_event_from_proto(event)
    assert raised.value.reason == reason


def test_a_course_round_trips_as_a_pending_course_of_the_named_issuer() -> None:
    course = Course(
        course_id="swayam-ds-101",
        issuer_id="swayam",
        title="Data Science",
        level=Decimal("5"),
        notional_hours=60,
        hours_basis=HoursBasis.NCRF,
        credit_recommendation=CreditRecommendation.PENDING,
        skills=("python",),
        category=CourseCategory.SWAYAM_MOOC,
    )
    message = course_to_proto(course, NOW)
    assert message.level == common_pb2.NCRF_LEVEL_5
    assert message.credit_recommendation == common_pb2.CREDIT_RECOMMENDATION_PENDING
    assert course_from_proto(message, issuer_id="swayam") == course


def test_entry_kinds_all_have_a_wire_kind() -> None:
    from learnerledger.domain.entries import EntryKind
    from learnerledger.wire.enums import KIND_TO_PROTO

    assert set(KIND_TO_PROTO) == set(EntryKind)
    assert events_pb2.ENTRY_KIND_UNSPECIFIED not in KIND_TO_PROTO.values()


def test_a_revocation_request_keeps_its_event_id_and_round_trips() -> None:
    request = issuer_gateway_pb2.RevokeCompletionRequest(
        completion_id="c-1", reason="issued in error", learner_id="123456789012"
    )
    revocation = revocation_from_proto(
        request, issuer_id="swayam", learner_id="123456789012", now=NOW
    )
    assert revocation.envelope.event_id == revocation_event_id("swayam", "c-1")
    assert (revocation.completion_id, revocation.reason) == ("c-1", "issued in error")
    assert completion_event_from_proto(completion_event_to_proto(revocation)) == revocation


def test_a_redemption_request_round_trips() -> None:
    request = redemption_pb2.RedeemCreditsRequest(
        learner_id="123456789012",
        redemption_id="r-1",
        programme_id="du-bsc",
        credential_sequences=[3, 1],
        allow_partial=True,
    )
    asked = redemption_request_from_proto(
        request, university_id="du", request_digest="ab" * 32, now=NOW
    )
    assert asked.envelope.event_id == redemption_event_id("du", "r-1")
    assert asked.credential_sequences == (3, 1)
    assert completion_event_from_proto(completion_event_to_proto(asked)) == asked


def test_a_programme_round_trips_and_an_unknown_level_is_named() -> None:
    programme = programme_from_proto(
        redemption_pb2.Programme(
            programme_id="du-bsc",
            university_id="du",
            title="BSc",
            level=common_pb2.NCRF_LEVEL_5_5,
            total_credits=120,
        )
    )
    assert programme.level == Decimal("5.5")
    assert programme.validity_years is None
    message = programme_to_proto(programme, NOW)
    assert (message.level, message.total_credits) == (common_pb2.NCRF_LEVEL_5_5, 120.0)
    with pytest.raises(InvalidProgramme) as raised:
        programme_from_proto(redemption_pb2.Programme(programme_id="x", university_id="du"))
    assert raised.value.field == "level"
