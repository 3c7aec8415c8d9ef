"""ListCourses filters and the reason in force."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from learnerledger.domain.catalog import (
    CourseFilter,
    CreditRecommendation,
    ForeignIssuer,
    InvalidCourse,
    InvalidCourseFilter,
    RecommendationChange,
    change_in_force,
    check_proposal,
)
from tests.support.domain import course

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


def test_an_issuer_proposes_pending_courses_for_its_own_catalog_only() -> None:
    proposed = course(recommendation=CreditRecommendation.PENDING, course_id="ml-201")
    check_proposal(proposed, caller="swayam", named_issuer="", version_of=None)
    check_proposal(proposed, caller="swayam", named_issuer="swayam", version_of=None)
    with pytest.raises(ForeignIssuer):
        check_proposal(proposed, caller="swayam", named_issuer="nptel", version_of=None)
    with pytest.raises(ForeignIssuer):
        check_proposal(proposed, caller="nptel", named_issuer="", version_of=None)
    approved = course(recommendation=CreditRecommendation.APPROVED, course_id="ml-201")
    with pytest.raises(InvalidCourse, match="PENDING"):
        check_proposal(approved, caller="swayam", named_issuer="", version_of=None)


def test_a_proposed_version_counts_only_as_one_of_the_issuers_own_courses() -> None:
    version = replace(
        course(recommendation=CreditRecommendation.PENDING, course_id="ml-101-v2"),
        counts_as="ml-101",
    )
    own = course(course_id="ml-101")
    check_proposal(version, caller="swayam", named_issuer="", version_of=own)
    for other in (None, course(course_id="ml-101", issuer_id="nptel")):
        with pytest.raises(InvalidCourse, match="not a course in your catalog") as refused:
            check_proposal(version, caller="swayam", named_issuer="", version_of=other)
        assert refused.value.field == "counts_as_course_id"
