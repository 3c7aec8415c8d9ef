"""The course catalog: what an issuer offers and whether it carries a credit recommendation."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

#: NCrF levels in higher education (4.5 first-year UG certificate ... 8 doctorate): what every
#: issuer may give a course, and what a programme may be.
NCRF_LEVELS: frozenset[Decimal] = frozenset(
    Decimal(v) for v in ("4.5", "5", "5.5", "6", "6.5", "7", "8")
)
#: The whole NCrF range, level 1 to 8 in half steps. Skilling (NSQF) courses may take any of
#: them, also below 4.5 (school and vocational levels).
NCRF_ALL_LEVELS: frozenset[Decimal] = frozenset(Decimal(n) / 2 for n in range(2, 17))


class HoursBasis(enum.StrEnum):
    """How a course's hours become credits. Every credit entry records the basis it used."""

    #: NCrF: 1 credit = 30 notional learning hours, whatever the component.
    NCRF = "ncrf"
    #: NHEQF: 1 credit = 15 h theory, 30 h practical, 45 h experiential learning.
    NHEQF = "nheqf"
    #: Recorded by no new entry: the single-component NHEQF bases an early rules draft named.
    NHEQF_THEORY = "nheqf_theory"
    NHEQF_PRACTICAL = "nheqf_practical"


#: The bases a course may declare.
COURSE_HOURS_BASES: frozenset[HoursBasis] = frozenset({HoursBasis.NCRF, HoursBasis.NHEQF})


class CreditRecommendation(enum.StrEnum):
    """Only courses with an approved credit recommendation earn academic credit."""

    PENDING = "pending"
    APPROVED = "approved"
    WITHDRAWN = "withdrawn"


class CourseCategory(enum.StrEnum):
    """Where a course's credit comes from, for the redemption caps (docs/domain.md)."""

    SWAYAM_MOOC = "swayam_mooc"
    MICRO_CREDENTIAL = "micro_credential"
    UNIVERSITY_COURSE = "university_course"
    SKILLING = "skilling"


class InvalidCourse(ValueError):
    """A course definition breaks a catalog rule; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def parse_level(value: str | Decimal, *, allowed: frozenset[Decimal] = NCRF_LEVELS) -> Decimal:
    """Parse an NCrF level ("4.5", "6", ...) and refuse anything outside ``allowed`` (the
    higher-education levels unless the caller says otherwise)."""
    try:
        level = Decimal(str(value))
    except ArithmeticError as exc:
        raise InvalidCourse("level", f"{value!r} is not a number") from exc
    if level not in allowed:
        listed = ", ".join(str(v) for v in sorted(allowed))
        raise InvalidCourse("level", f"{value} is not an NCrF level ({listed})")
    # Return the canonical member ("6", not "6.0") so every entry spells a level the same way.
    return next(member for member in allowed if member == level)


def levels_for(category: CourseCategory) -> frozenset[Decimal]:
    """The NCrF levels a course of ``category`` may have: skilling bodies (NSQF) the whole range
    1 to 8 in half steps, everyone else the higher-education levels (migration 0040 checks the
    same in PostgreSQL)."""
    return NCRF_ALL_LEVELS if category is CourseCategory.SKILLING else NCRF_LEVELS


#: An approval or withdrawal whose effective time lies further back than this before the moment
#: it is recorded is a backdating, and must say why.
BACKDATING_GRACE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class RecommendationChange:
    """One approval or withdrawal of a course's credit recommendation, as the catalog keeps it.

    Changes are only ever added (never overwritten): ``effective_at`` is when the change takes
    effect (an admin may backdate it, with a ``reason``), ``recorded_at`` when the catalog learnt
    of it. The state at an instant is that of the change with the latest ``effective_at`` at or
    before it; of two changes effective at the same instant, the one recorded later wins.
    """

    change_id: uuid.UUID
    course_id: str
    state: CreditRecommendation
    effective_at: datetime
    recorded_at: datetime
    reason: str = ""

    def __post_init__(self) -> None:
        if self.effective_at.tzinfo is None or self.recorded_at.tzinfo is None:
            raise InvalidCourse("effective_at", "must carry a time zone")
        if self.effective_at < self.recorded_at - BACKDATING_GRACE and not self.reason.strip():
            raise InvalidCourse(
                "reason", "a backdated approval or withdrawal must say why it is backdated"
            )

    @property
    def is_backdated(self) -> bool:
        return self.effective_at < self.recorded_at - BACKDATING_GRACE


def _in_effect_order(history: Sequence[RecommendationChange]) -> list[RecommendationChange]:
    return sorted(history, key=lambda c: (c.effective_at, c.recorded_at))


def change_in_force(
    history: Sequence[RecommendationChange], instant: datetime
) -> RecommendationChange | None:
    """The approval or withdrawal in force at ``instant`` (None: none yet; the course is
    pending), with its reason."""
    in_force = None
    for change in _in_effect_order(history):
        if change.effective_at > instant:
            break
        in_force = change
    return in_force


def recommendation_at(
    history: Sequence[RecommendationChange],
    instant: datetime,
    *,
    initial: CreditRecommendation = CreditRecommendation.PENDING,
) -> CreditRecommendation:
    """The credit recommendation in force at ``instant`` according to ``history``."""
    state = initial
    for change in _in_effect_order(history):
        if change.effective_at > instant:
            break
        state = change.state
    return state


@dataclass(frozen=True, slots=True)
class ApprovedPeriod:
    """A half-open interval [start, end) during which a course was approved; ``end`` None: open."""

    start: datetime
    end: datetime | None
    change_id: uuid.UUID

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant and (self.end is None or instant < self.end)


def approved_periods(history: Sequence[RecommendationChange]) -> list[ApprovedPeriod]:
    """The periods in which ``history`` says the course was approved, each named by the
    approval that opened it."""
    periods: list[ApprovedPeriod] = []
    opened: RecommendationChange | None = None
    for change in _in_effect_order(history):
        approved = change.state is CreditRecommendation.APPROVED
        if approved and opened is None:
            opened = change
        elif not approved and opened is not None:
            if change.effective_at > opened.effective_at:
                periods.append(
                    ApprovedPeriod(opened.effective_at, change.effective_at, opened.change_id)
                )
            opened = None
    if opened is not None:
        periods.append(ApprovedPeriod(opened.effective_at, None, opened.change_id))
    return periods


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
    #: Every approval and withdrawal with its effective time. A course without history (built
    #: in memory) is taken to have held ``credit_recommendation`` all along.
    history: tuple[RecommendationChange, ...] = field(default=())
    #: A version of another course names it here; empty: the course counts as itself.
    counts_as: str = ""
    #: Where the course's credit comes from (caps at redemption); the catalog's default is a
    #: university course.
    category: CourseCategory = CourseCategory.UNIVERSITY_COURSE
    #: How the course's hours become credits (see HoursBasis).
    hours_basis: HoursBasis = HoursBasis.NCRF
    #: Hours per component. All zero: the course declared only its total (``notional_hours``),
    #: which only the NCrF basis can use; otherwise they add up to ``notional_hours``.
    theory_hours: int = 0
    practical_hours: int = 0
    experiential_hours: int = 0

    def __post_init__(self) -> None:
        if not self.course_id:
            raise InvalidCourse("course_id", "must not be empty")
        if not self.issuer_id:
            raise InvalidCourse("issuer_id", "must not be empty")
        if not self.title:
            raise InvalidCourse("title", "must not be empty")
        if self.level not in levels_for(self.category):
            if self.level in NCRF_ALL_LEVELS:
                raise InvalidCourse(
                    "level",
                    f"{self.level} is below 4.5 or 7.5: only skilling (NSQF) courses may have it",
                )
            raise InvalidCourse("level", f"{self.level} is not an NCrF level (1 to 8, half steps)")
        if self.counts_as == self.course_id:
            raise InvalidCourse("counts_as_course_id", "a course cannot be a version of itself")
        if not 1 <= self.notional_hours <= 1200 * 8:
            raise InvalidCourse(
                "notional_hours", "must be between 1 and 9600 (8 years of 1200 hours)"
            )
        if self.hours_basis not in COURSE_HOURS_BASES:
            raise InvalidCourse("hours_basis", "must be NCrF or NHEQF")
        components = (self.theory_hours, self.practical_hours, self.experiential_hours)
        for name, hours in zip(
            ("theory_hours", "practical_hours", "experiential_hours"), components, strict=True
        ):
            if hours < 0:
                raise InvalidCourse(name, "must not be negative")
        if any(components) and sum(components) != self.notional_hours:
            raise InvalidCourse(
                "notional_hours",
                f"must be the sum of the components ({sum(components)}), got {self.notional_hours}",
            )
        if self.hours_basis is HoursBasis.NHEQF and not any(components):
            raise InvalidCourse(
                "hours_basis",
                "an NHEQF course declares its theory, practical and experiential hours",
            )

    @property
    def credit_group(self) -> str:
        """The course a learner earns credit for once: this one, or the one it is a version of."""
        return self.counts_as or self.course_id

    def recommendation_at(self, instant: datetime) -> CreditRecommendation:
        """The course's credit recommendation as it was at ``instant`` (docs/domain.md: a completion
        is decided on the catalog as it was at ``completed_at``)."""
        if not self.history:
            return self.credit_recommendation
        return recommendation_at(self.history, instant)

    def approved_at(self, instant: datetime) -> bool:
        return self.recommendation_at(instant) is CreditRecommendation.APPROVED


#: The fields ListCourses filters on (AIP-160 ``field = value`` joined by AND).
COURSE_FILTER_FIELDS = ("issuer_id", "level", "credit_recommendation")


class InvalidCourseFilter(ValueError):
    """A course filter value that is not a level or a recommendation state."""


@dataclass(frozen=True, slots=True)
class CourseFilter:
    """What ListCourses keeps: every field set must match."""

    issuer_id: str | None = None
    level: Decimal | None = None
    credit_recommendation: CreditRecommendation | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> CourseFilter:
        """Build from parsed comparisons (field -> value); values are validated here."""
        unknown = set(values) - set(COURSE_FILTER_FIELDS)
        if unknown:
            raise InvalidCourseFilter(
                f"unknown field {sorted(unknown)[0]!r}; filter on "
                + ", ".join(COURSE_FILTER_FIELDS)
            )
        level = None
        if "level" in values:
            try:
                level = parse_level(values["level"])
            except (InvalidCourse, ArithmeticError, ValueError) as exc:
                raise InvalidCourseFilter(
                    f"level {values['level']!r} is not an NCrF level"
                ) from exc
        recommendation = None
        if "credit_recommendation" in values:
            try:
                recommendation = CreditRecommendation(values["credit_recommendation"].lower())
            except ValueError as exc:
                raise InvalidCourseFilter(
                    f"credit_recommendation {values['credit_recommendation']!r} is not one of "
                    "PENDING, APPROVED, WITHDRAWN"
                ) from exc
        return cls(values.get("issuer_id"), level, recommendation)

    def matches(self, course: Course) -> bool:
        return (
            (self.issuer_id is None or course.issuer_id == self.issuer_id)
            and (self.level is None or course.level == self.level)
            and (
                self.credit_recommendation is None
                or course.credit_recommendation is self.credit_recommendation
            )
        )


@dataclass(frozen=True, slots=True)
class CourseLabel:
    """What a transcript shows of a course from the catalog: its title and skills."""

    title: str
    skills: tuple[str, ...] = ()


class ForeignIssuer(ValueError):
    """A proposal names another issuer's catalog."""


def check_proposal(
    proposed: Course, *, caller: str, named_issuer: str, version_of: Course | None
) -> None:
    """An issuer proposes courses for its own catalog only, and they start PENDING (an admin
    approves them); a version may only count as one of the issuer's own courses.

    ``named_issuer``: the issuer id the request named ("" for none); ``version_of``: the course
    ``proposed.counts_as`` names, as the catalog has it (None if unknown)."""
    if named_issuer and named_issuer != caller:
        raise ForeignIssuer(f"issuer {caller} cannot propose a course for issuer {named_issuer}")
    if proposed.issuer_id != caller:
        raise ForeignIssuer(f"issuer {caller} cannot propose a course for {proposed.issuer_id}")
    if proposed.credit_recommendation is not CreditRecommendation.PENDING:
        raise InvalidCourse("credit_recommendation", "a proposed course starts PENDING")
    if proposed.counts_as and (version_of is None or version_of.issuer_id != caller):
        raise InvalidCourse(
            "counts_as_course_id", f"{proposed.counts_as} is not a course in your catalog"
        )
