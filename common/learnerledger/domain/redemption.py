"""Redemption: a university counts a learner's credits toward one of its programmes.

Pure: :func:`assess` decides every credential a request names at the redemption instant, from
what the ledger looked up (the programme, the learner's credentials with their state, what the
learner already redeemed toward the programme, the learner's consent). The credit rules turn the
assessment into one entry of the learner's chain (``credits_redeemed`` or
``redemption_refused``), decided in the learner's order like every other request, so two
universities can never both redeem the same credit.

Rules (docs/domain.md; the caps are part of the rules version, :class:`RedemptionRules`):

- A credential is redeemable when it is the learner's credit entry, not revoked, not redeemed
  by anyone, not expired at the redemption instant (its ``valid_until``, or the programme's own
  stricter shelf life counted from ``completed_at``) and of a level suitable for the programme
  (at most the programme's level and at most ``level_span`` below it, *default* 1.5: a level-6
  degree takes 4.5 to 6).
- Caps on the programme's running total for the learner (already redeemed plus this request):
  SWAYAM MOOC credits <= 40 % of the programme's credits, micro-credential credits <= 50 %,
  and all credits <= the programme's credits. Credentials are taken in the order asked (the
  learner's sequence order for "every eligible one"); the first that would pass a cap is
  refused ``CAP_EXCEEDED``, and so is every later one that would.
- No consent for the university in force: every credential is refused ``NO_CONSENT``.
- All or nothing (``allow_partial`` false): if any credential is refused, none is redeemed and
  the ones that would have been are answered ``WITHHELD``.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from learnerledger.domain.canonical_json import canonical_json
from learnerledger.domain.catalog import NCRF_LEVELS, CourseCategory, InvalidCourse, parse_level
from learnerledger.domain.entries import JsonValue

#: A programme's credits: at least one, at most 8 years of 40 credits.
MAX_PROGRAMME_CREDITS = Decimal(320)
#: The longest shelf life the ABC allows (UGC ABC Regulations 2021); a programme may be stricter.
MAX_VALIDITY_YEARS = 7


class Outcome(enum.StrEnum):
    """The answer for one credential of a redemption request."""

    REDEEMED = "redeemed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ALREADY_REDEEMED = "already_redeemed"
    CAP_EXCEEDED = "cap_exceeded"
    LEVEL_MISMATCH = "level_mismatch"
    NO_CONSENT = "no_consent"
    #: The sequence is not one of the learner's credit entries.
    NOT_A_CREDENTIAL = "not_a_credential"
    #: Would have been redeemed, but the request was all or nothing and another was refused.
    WITHHELD = "withheld"


@dataclass(frozen=True, slots=True)
class RedemptionRules:
    """The redemption part of a rules version (docs/domain.md: caps apply at redemption)."""

    swayam_share: Decimal = Decimal("0.4")
    micro_credential_share: Decimal = Decimal("0.5")
    level_span: Decimal = Decimal("1.5")

    def cap(self, programme: Programme, category: CourseCategory) -> Decimal | None:
        """The most credit of ``category`` the programme may take (None: no cap but its total)."""
        match category:
            case CourseCategory.SWAYAM_MOOC:
                return programme.total_credits * self.swayam_share
            case CourseCategory.MICRO_CREDENTIAL:
                return programme.total_credits * self.micro_credential_share
            case _:
                return None

    def level_suits(self, programme: Programme, level: Decimal) -> bool:
        return programme.level - self.level_span <= level <= programme.level


class InvalidProgramme(ValueError):
    """A programme definition breaks a rule; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class Programme:
    """A university's degree or diploma; credits are redeemed toward it."""

    programme_id: str
    university_id: str
    title: str
    level: Decimal
    total_credits: Decimal
    #: The university's own shelf life for credits, if stricter than the 7 years of the ABC.
    validity_years: int | None = None

    def __post_init__(self) -> None:
        for name in ("programme_id", "university_id", "title"):
            if not getattr(self, name):
                raise InvalidProgramme(name, "must not be empty")
        if self.level not in NCRF_LEVELS:
            raise InvalidProgramme("level", f"{self.level} is not an NCrF level")
        if not Decimal(1) <= self.total_credits <= MAX_PROGRAMME_CREDITS:
            raise InvalidProgramme("total_credits", "must be between 1 and 320")
        if self.total_credits * 2 != (self.total_credits * 2).to_integral_value():
            raise InvalidProgramme("total_credits", "must be a multiple of 0.5")
        if self.validity_years is not None and not 1 <= self.validity_years <= MAX_VALIDITY_YEARS:
            raise InvalidProgramme("validity_years", "must be between 1 and 7 (or unset)")


def programme_level(value: str | Decimal) -> Decimal:
    """An NCrF level for a programme; :class:`InvalidProgramme` otherwise."""
    try:
        return parse_level(value)
    except InvalidCourse as exc:
        raise InvalidProgramme("level", exc.message) from exc


@dataclass(frozen=True, slots=True)
class HeldCredential:
    """One of the learner's credit entries as the ledger holds it at the redemption instant."""

    sequence: int
    course_id: str
    category: CourseCategory
    level: Decimal
    credits: Decimal
    completed_at: datetime
    valid_until: datetime
    revoked: bool = False
    redeemed: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    """The outcome for one credential. ``credits``/``category``/``course_id`` are those of the
    credential (zero and empty for ``NOT_A_CREDENTIAL``)."""

    sequence: int
    outcome: Outcome
    credits: Decimal = Decimal(0)
    category: CourseCategory | None = None
    course_id: str = ""

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "sequence": self.sequence,
            "outcome": self.outcome.value,
            "credits": float(self.credits),
            "category": self.category.value if self.category else None,
            "course_id": self.course_id,
        }


@dataclass(frozen=True, slots=True)
class Assessment:
    lines: tuple[Line, ...]

    @property
    def redeemed(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.outcome is Outcome.REDEEMED)

    @property
    def redeemed_credits(self) -> Decimal:
        return sum((line.credits for line in self.redeemed), Decimal(0))


def _add(totals: dict[CourseCategory, Decimal], category: CourseCategory, credits: Decimal) -> None:
    totals[category] = totals.get(category, Decimal(0)) + credits


def is_expired_for(credential: HeldCredential, programme: Programme, instant: datetime) -> bool:
    """Expired at ``instant``: past its ``valid_until`` or the programme's own shelf life."""
    if credential.valid_until <= instant:
        return True
    if programme.validity_years is None:
        return False
    years = programme.validity_years
    try:
        own_end = credential.completed_at.replace(year=credential.completed_at.year + years)
    except ValueError:  # 29 February into a year that is not a leap year
        own_end = credential.completed_at.replace(
            year=credential.completed_at.year + years, day=28
        ) + timedelta(days=1)
    return own_end <= instant


def assess(
    *,
    programme: Programme,
    held: Mapping[int, HeldCredential],
    asked: Sequence[int] | None,
    already_redeemed: Mapping[CourseCategory, Decimal],
    consent: bool,
    allow_partial: bool,
    instant: datetime,
    rules: RedemptionRules,
) -> Assessment:
    """Decide every credential of a request at ``instant``.

    ``asked``: the sequences named (in the order asked), or None for every eligible one.
    ``already_redeemed``: the learner's credits already redeemed toward ``programme``, by
    category (the running total the caps apply to).
    """
    if asked is None:
        candidates = [
            c
            for _, c in sorted(held.items())
            if not c.revoked
            and not c.redeemed
            and not is_expired_for(c, programme, instant)
            and rules.level_suits(programme, c.level)
        ]
        order: list[int] = [c.sequence for c in candidates]
    else:
        order = list(asked)
    totals: dict[CourseCategory, Decimal] = dict(already_redeemed)
    lines: list[Line] = []
    taken: set[int] = set()
    for sequence in order:
        credential = held.get(sequence)
        if credential is None:
            lines.append(Line(sequence, Outcome.NOT_A_CREDENTIAL))
            continue
        if sequence in taken:  # named twice: the first mention redeemed it
            credential = replace(credential, redeemed=True)
        outcome = _outcome(credential, programme, totals, consent, instant, rules)
        if outcome is Outcome.REDEEMED:
            _add(totals, credential.category, credential.credits)
            taken.add(sequence)
        lines.append(
            Line(sequence, outcome, credential.credits, credential.category, credential.course_id)
        )
    refused = any(line.outcome is not Outcome.REDEEMED for line in lines)
    if refused and not allow_partial:
        lines = [
            Line(line.sequence, Outcome.WITHHELD, line.credits, line.category, line.course_id)
            if line.outcome is Outcome.REDEEMED
            else line
            for line in lines
        ]
    return Assessment(tuple(lines))


def _outcome(
    credential: HeldCredential,
    programme: Programme,
    totals: Mapping[CourseCategory, Decimal],
    consent: bool,
    instant: datetime,
    rules: RedemptionRules,
) -> Outcome:
    if not consent:
        return Outcome.NO_CONSENT
    if credential.revoked:
        return Outcome.REVOKED
    if credential.redeemed:
        return Outcome.ALREADY_REDEEMED
    if is_expired_for(credential, programme, instant):
        return Outcome.EXPIRED
    if not rules.level_suits(programme, credential.level):
        return Outcome.LEVEL_MISMATCH
    if sum(totals.values(), Decimal(0)) + credential.credits > programme.total_credits:
        return Outcome.CAP_EXCEEDED
    cap = rules.cap(programme, credential.category)
    if cap is not None and totals.get(credential.category, Decimal(0)) + credential.credits > cap:
        return Outcome.CAP_EXCEEDED
    return Outcome.REDEEMED


def request_digest(
    *,
    university_id: str,
    learner_id: str,
    programme_id: str,
    credential_sequences: Sequence[int],
    all_eligible: bool,
    allow_partial: bool,
) -> str:
    """A fingerprint of what a university asked, to tell a retry of a redemption id from a
    different request under the same id."""
    statement: dict[str, JsonValue] = {
        "university_id": university_id,
        "learner_id": learner_id,
        "programme_id": programme_id,
        "credential_sequences": list(credential_sequences),
        "all_eligible": all_eligible,
        "allow_partial": allow_partial,
    }
    return hashlib.sha256(canonical_json(statement)).hexdigest()
