"""The credit rules as one versioned configuration (the *default* choices of docs/domain.md
are version 1).

A ``CreditRules`` is one version: hours per credit per basis, validity years, the annual credit
limit and the redemption caps. ``RulesHistory`` holds every version with the instant it applies
from. A new decision uses the version in force when it is decided (its ``recorded_at``); every
entry records that version's number (``rules_version``), and a re-decision of an entry uses the
version the entry recorded, so it reproduces the old decision whatever version is current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from math import floor

from learnerledger.domain.catalog import Course, HoursBasis
from learnerledger.domain.redemption import RedemptionRules

RULES_VERSION = 1

#: Version 1 has applied from the beginning.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class NheqfHours:
    """NHEQF hours per credit, per component."""

    theory: int = 15
    practical: int = 30
    experiential: int = 45


@dataclass(frozen=True, slots=True)
class CourseHours:
    """The hours that produce a course's credits, as an entry records them."""

    basis: HoursBasis
    total: int
    theory: int = 0
    practical: int = 0
    experiential: int = 0

    @classmethod
    def of(cls, course: Course) -> CourseHours:
        return cls(
            course.hours_basis,
            course.notional_hours,
            course.theory_hours,
            course.practical_hours,
            course.experiential_hours,
        )

    @property
    def has_components(self) -> bool:
        return any((self.theory, self.practical, self.experiential))


class UnknownRulesVersion(ValueError):
    """An entry names a rules version this service does not know."""


@dataclass(frozen=True, slots=True)
class CreditRules:
    """One version of the rules."""

    version: int = RULES_VERSION
    #: When this version starts to apply (decisions recorded at or after it use it).
    effective_from: datetime = BEGINNING
    #: NCrF: notional hours per credit, whatever the component.
    ncrf_hours_per_credit: int = 30
    #: NHEQF: hours per credit per component.
    nheqf_hours_per_credit: NheqfHours = field(default_factory=NheqfHours)
    #: Credits are redeemable for this many years after completion (UGC ABC 2021).
    validity_years: int = 7
    #: The transcript flags (never refuses) more credit completed within any 365 days.
    annual_credit_limit: Decimal = Decimal(40)
    #: The caps and the level rule applied at redemption.
    redemption: RedemptionRules = field(default_factory=RedemptionRules)

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError("a rules version is a positive number")
        if self.effective_from.tzinfo is None:
            raise ValueError("effective_from must carry a time zone")
        hours = self.nheqf_hours_per_credit
        if min(self.ncrf_hours_per_credit, hours.theory, hours.practical, hours.experiential) < 1:
            raise ValueError("hours per credit must be positive")
        if self.validity_years < 1 or self.annual_credit_limit <= 0:
            raise ValueError("validity_years and annual_credit_limit must be positive")

    def exact_credits(self, hours: CourseHours) -> Fraction:
        """The credits ``hours`` are worth under their basis, before rounding."""
        match hours.basis:
            case HoursBasis.NHEQF:
                per = self.nheqf_hours_per_credit
                return (
                    Fraction(hours.theory, per.theory)
                    + Fraction(hours.practical, per.practical)
                    + Fraction(hours.experiential, per.experiential)
                )
            case HoursBasis.NHEQF_THEORY:
                return Fraction(hours.total, self.nheqf_hours_per_credit.theory)
            case HoursBasis.NHEQF_PRACTICAL:
                return Fraction(hours.total, self.nheqf_hours_per_credit.practical)
            case _:
                return Fraction(hours.total, self.ncrf_hours_per_credit)

    def credits(self, hours: CourseHours) -> Decimal:
        """Credits for ``hours``, rounded down to 0.5."""
        return Decimal(floor(self.exact_credits(hours) * 2)) / 2

    def credits_for_hours(self, notional_hours: int) -> Decimal:
        """Credits for ``notional_hours`` on the NCrF basis, rounded down to 0.5."""
        return self.credits(CourseHours(HoursBasis.NCRF, notional_hours))

    def valid_until(self, completed_at: datetime) -> datetime:
        """Credits are redeemable for ``validity_years`` after completion (UGC ABC 2021)."""
        try:
            return completed_at.replace(year=completed_at.year + self.validity_years)
        except ValueError:  # 29 February, and the target year is not a leap year
            return completed_at.replace(
                year=completed_at.year + self.validity_years, day=28
            ) + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RulesHistory:
    """Every rules version, in order: versions 1, 2, ... with increasing ``effective_from``;
    version 1 applies from the beginning."""

    versions: tuple[CreditRules, ...] = (CreditRules(),)

    def __post_init__(self) -> None:
        if not self.versions:
            raise ValueError("a rules history holds at least version 1")
        if self.versions[0].effective_from != BEGINNING:
            raise ValueError("version 1 applies from the beginning")
        for number, (rules, before) in enumerate(
            zip(self.versions, (None, *self.versions[:-1]), strict=True), start=1
        ):
            if rules.version != number:
                raise ValueError(f"versions are numbered 1, 2, ...: got {rules.version}")
            if before is not None and rules.effective_from <= before.effective_from:
                raise ValueError(f"version {number} must apply after version {number - 1}")

    @classmethod
    def of(cls, versions: Sequence[CreditRules]) -> RulesHistory:
        return cls(tuple(versions))

    def in_force_at(self, instant: datetime) -> CreditRules:
        """The version a decision recorded at ``instant`` uses."""
        current = self.versions[0]
        for rules in self.versions[1:]:
            if rules.effective_from > instant:
                break
            current = rules
        return current

    def version(self, number: int) -> CreditRules:
        """The version an entry recorded (to reproduce its decision)."""
        if not 1 <= number <= len(self.versions):
            raise UnknownRulesVersion(f"rules version {number} is unknown")
        return self.versions[number - 1]


#: The rules this deployment applies. A new version is added here (reviewed code, not runtime
#: configuration: every replica and every replay must agree on what each number means).
RULES = RulesHistory()
