"""Catalog courses <-> ``learnerledger.v1.Course``."""

from __future__ import annotations

from datetime import UTC, datetime

from learnerledger.domain.catalog import (
    NCRF_ALL_LEVELS,
    Course,
    CourseCategory,
    CreditRecommendation,
    InvalidCourse,
    change_in_force,
    parse_level,
)
from learnerledger.v1 import common_pb2
from learnerledger.wire.enums import (
    CATEGORY_TO_PROTO,
    HOURS_BASIS_TO_PROTO,
    LEVEL_TO_PROTO,
    PROTO_TO_CATEGORY,
    PROTO_TO_COURSE_BASIS,
    PROTO_TO_LEVEL,
    RECOMMENDATION_TO_PROTO,
)


def course_to_proto(course: Course, now: datetime | None = None) -> common_pb2.Course:
    """A catalog course as the APIs show it, with the reason of the change in force ``now``."""
    in_force = change_in_force(course.history, now or datetime.now(UTC))
    return common_pb2.Course(
        course_id=course.course_id,
        issuer_id=course.issuer_id,
        title=course.title,
        level=LEVEL_TO_PROTO[str(course.level)],
        notional_hours=course.notional_hours,
        skills=list(course.skills),
        credit_recommendation=RECOMMENDATION_TO_PROTO[course.credit_recommendation],
        counts_as_course_id=course.counts_as,
        category=CATEGORY_TO_PROTO[course.category],
        hours_basis=HOURS_BASIS_TO_PROTO[course.hours_basis.value],
        theory_hours=course.theory_hours,
        practical_hours=course.practical_hours,
        experiential_hours=course.experiential_hours,
        recommendation_reason="" if in_force is None else in_force.reason,
    )


def course_from_proto(course: common_pb2.Course, *, issuer_id: str) -> Course:
    """A course as CreateCourse (``issuer_id`` from the request) and ProposeCourse (the
    caller's, whatever the message says) add it: always PENDING, in ``issuer_id``'s catalog.
    InvalidCourse names the first field that is wrong."""
    if course.level not in PROTO_TO_LEVEL:
        raise InvalidCourse("level", "must be an NCrF level (1 to 8)")
    if course.hours_basis not in PROTO_TO_COURSE_BASIS:
        raise InvalidCourse("hours_basis", "must be NCRF or NHEQF")
    if course.category != common_pb2.COURSE_CATEGORY_UNSPECIFIED and (
        course.category not in PROTO_TO_CATEGORY
    ):
        raise InvalidCourse("category", "must be a known course category")
    return Course(
        course_id=course.course_id,
        issuer_id=issuer_id,
        title=course.title,
        level=parse_level(PROTO_TO_LEVEL[course.level], allowed=NCRF_ALL_LEVELS),
        notional_hours=course.notional_hours,
        hours_basis=PROTO_TO_COURSE_BASIS[course.hours_basis],
        theory_hours=course.theory_hours,
        practical_hours=course.practical_hours,
        experiential_hours=course.experiential_hours,
        credit_recommendation=CreditRecommendation.PENDING,
        skills=tuple(course.skills),
        counts_as=course.counts_as_course_id,
        category=PROTO_TO_CATEGORY.get(course.category, CourseCategory.UNIVERSITY_COURSE),
    )
