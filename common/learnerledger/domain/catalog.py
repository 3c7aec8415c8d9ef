"""The course catalog: what an issuer offers and whether it carries a credit recommendation."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal

#: NCrF levels in higher education (4.5 first-year UG certificate ... 8 doctorate).
NCRF_LEVELS: frozenset[Decimal] = frozenset(
    Decimal(v) for v in ("4.5", "5", "5.5", "6", "6.5", "7", "8")
)


class CreditRecommendation(enum.StrEnum):
    """Only courses with an approved credit recommendation earn academic credit."""

    PENDING = "pending"
    APPROVED = "approved"
    WITHDRAWN = "withdrawn"


class InvalidCourse(ValueError):
    """A course definition breaks a catalog rule; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def parse_level(value: str | Decimal) -> Decimal:
    """Parse an NCrF level ("4.5", "6", ...) and refuse anything outside NCRF_LEVELS."""
    try:
        level = Decimal(str(value))
    except ArithmeticError as exc:
        raise InvalidCourse("level", f"{value!r} is not a number") from exc
    if level not in NCRF_LEVELS:
        allowed = ", ".join(str(v) for v in sorted(NCRF_LEVELS))
        raise InvalidCourse("level", f"{value} is not an NCrF level ({allowed})")
    # Return the canonical member ("6", not "6.0") so every entry spells a level the same way.
    return next(member for member in NCRF_LEVELS if member == level)


@dataclass(frozen=True, slots=True)
class Course:
    """An issuer's catalog entry. ``course_id`` is unique across issuers."""

    course_id: str
    issuer_id: str
    title: str
    level: Decimal
    notional_hours: int
    credit_recommendation: CreditRecommendation = CreditRecommendation.PENDING
    skills: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.course_id:
            raise InvalidCourse("course_id", "must not be empty")
        if not self.issuer_id:
            raise InvalidCourse("issuer_id", "must not be empty")
        if not self.title:
            raise InvalidCourse("title", "must not be empty")
        if self.level not in NCRF_LEVELS:
            raise InvalidCourse("level", f"{self.level} is not an NCrF level")
        if not 1 <= self.notional_hours <= 1200 * 8:
            raise InvalidCourse(
                "notional_hours", "must be between 1 and 9600 (8 years of 1200 hours)"
            )

    @property
    def is_approved(self) -> bool:
        return self.credit_recommendation is CreditRecommendation.APPROVED
