"""ListCourses filters and the reason in force (issue 13: partners and registrars)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from learnerledger.domain.catalog import (
    CourseFilter,
    CreditRecommendation,
    InvalidCourseFilter,
    RecommendationChange,
    change_in_force,
)
from tests.unit.domain_builders import course

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_course_filter_matches_issuer_level_and_recommendation() -> None:
    approved = course(recommendation=CreditRecommendation.APPROVED)
    pending = course(recommendation=CreditRecommendation.PENDING, course_id="db-1")
    f = CourseFilter.from_values({"credit_recommendation": "APPROVED", "level": "5.5"})
    assert f == CourseFilter(None, Decimal("5.5"), CreditRecommendation.APPROVED)
    assert f.matches(approved)
    assert not f.matches(pending)
    assert not CourseFilter.from_values({"level": "6"}).matches(approved)
    assert CourseFilter.from_values({"issuer_id": "swayam"}).matches(pending)
    assert not CourseFilter.from_values({"issuer_id": "nptel"}).matches(pending)
    assert CourseFilter.from_values({}).matches(pending)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"credit_recommendation": "MAYBE"}, "PENDING, APPROVED, WITHDRAWN"),
        ({"level": "9"}, "not an NCrF level"),
        ({"level": "x"}, "not an NCrF level"),
        ({"title": "ML"}, "unknown field"),
    ],
)
def test_course_filter_refuses_unknown_values(values: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidCourseFilter, match=message):
        CourseFilter.from_values(values)


def _change(state: CreditRecommendation, at: datetime, reason: str) -> RecommendationChange:
    return RecommendationChange(uuid.uuid4(), "ml-101", state, at, at, reason)


def test_the_reason_shown_is_that_of_the_change_in_force() -> None:
    approval = _change(CreditRecommendation.APPROVED, T0, "board approved")
    withdrawal = _change(CreditRecommendation.WITHDRAWN, T0 + timedelta(days=30), "syllabus cut")
    history = [withdrawal, approval]
    assert change_in_force(history, T0 - timedelta(days=1)) is None
    assert change_in_force(history, T0 + timedelta(days=1)) == approval
    in_force = change_in_force(history, T0 + timedelta(days=31))
    assert in_force is not None
    assert (in_force.state, in_force.reason) == (CreditRecommendation.WITHDRAWN, "syllabus cut")
