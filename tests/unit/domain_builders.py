"""Builders for domain objects in unit tests (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.domain.events import (
    CompletionSubmitted,
    Envelope,
    Result,
    RevocationRequested,
    completion_event_id,
    revocation_event_id,
)

LEARNER = "123456789012"
ISSUER = "swayam"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def course(
    hours: int = 90,
    recommendation: CreditRecommendation = CreditRecommendation.APPROVED,
    issuer_id: str = ISSUER,
    course_id: str = "ml-101",
) -> Course:
    return Course(course_id, issuer_id, "Machine learning", Decimal("5.5"), hours, recommendation)


def completion(
    completion_id: str = "c-1",
    *,
    learner_id: str = LEARNER,
    issuer_id: str = ISSUER,
    course_id: str = "ml-101",
    result: Result = Result.PASS,
    score: float | None = 81.0,
    completed_at: datetime = datetime(2026, 6, 1, 9, 30, tzinfo=UTC),
) -> CompletionSubmitted:
    envelope = Envelope(
        completion_event_id(issuer_id, completion_id), 1, NOW, issuer_id, learner_id
    )
    return CompletionSubmitted(envelope, completion_id, course_id, completed_at, result, score)


def revocation(
    completion_id: str = "c-1", *, issuer_id: str = ISSUER, learner_id: str = LEARNER
) -> RevocationRequested:
    envelope = Envelope(
        revocation_event_id(issuer_id, completion_id), 1, NOW, issuer_id, learner_id
    )
    return RevocationRequested(envelope, completion_id, "issued in error")
