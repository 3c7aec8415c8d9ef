"""Transcripts as a fold over one learner's entries.

``TranscriptProjection.apply`` is the only way a transcript changes; the query service's read
model, a replay and an ``as_of`` answer all run the same fold, so they cannot disagree.
Expiry is not an event: a credential's status is evaluated at the instant it is read.

Reads have two times (``read_at``):

- ``known_at``: what the ledger had recorded by then. The fold stops at the first entry
  recorded after it (``TranscriptProjection.fold(until=known_at)``).
- ``as_of``: what the learner held at that instant, by the times of the facts themselves: a
  completion counts from its ``completed_at``, a credit expires at its ``valid_until``, a
  revocation and a redemption take effect when the ledger recorded them (``held_at``).

A credit earned in 2025 and recorded in 2026 is held as of 2025-12-31 (known now), and was not
yet known at 2025-12-31.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from learnerledger.domain.entries import Entry, EntryKind, JsonValue
from learnerledger.domain.instants import format_instant, parse_instant
from learnerledger.domain.rules_versions import RULES, RulesHistory


class CredentialStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"
    #: Debited toward a programme (irrevocably; a later revocation or expiry does not undo it).
    REDEEMED = "redeemed"


class OutOfOrderEntry(Exception):
    """An entry arrived before its predecessor; the caller must fill the gap first."""

    def __init__(self, learner_id: str, expected_sequence: int, got_sequence: int) -> None:
        super().__init__(
            f"learner {learner_id}: expected sequence {expected_sequence}, got {got_sequence}"
        )
        self.learner_id = learner_id
        self.expected_sequence = expected_sequence
        self.got_sequence = got_sequence


@dataclass(frozen=True, slots=True)
class Credential:
    """Credit a learner was awarded for one completion."""

    learner_id: str
    sequence: int
    issuer_id: str
    completion_id: str
    course_id: str
    level: str
    credits: Decimal
    completed_at: datetime
    valid_until: datetime
    recorded_at: datetime
    revoked_by_sequence: int | None = None
    revoked_at: datetime | None = None
    #: The entry that redeemed it, when, toward which university's programme, under which id.
    redeemed_by_sequence: int | None = None
    redeemed_at: datetime | None = None
    redeemed_university_id: str | None = None
    redeemed_programme_id: str | None = None
    redemption_id: str | None = None
    #: What the entry records about the completion: the hours and basis that produced the
    #: credits, the issuer's grade, score and evidence (None: not given, or a read-model row
    #: written before these were kept).
    notional_hours: int | None = None
    hours_basis: str | None = None
    grade: str | None = None
    score: float | None = None
    evidence_url: str | None = None

    def redeemed_by(self, instant: datetime) -> bool:
        return self.redeemed_at is not None and self.redeemed_at <= instant

    def revoked_after_redemption(self, instant: datetime) -> bool:
        """Redeemed, then revoked by its issuer: the debit stays; the registrar should know."""
        return (
            self.redeemed_at is not None
            and self.revoked_at is not None
            and self.redeemed_at <= self.revoked_at <= instant
        )

    def status_at(self, instant: datetime) -> CredentialStatus:
        if self.redeemed_by(instant):
            return CredentialStatus.REDEEMED
        if self.revoked_at is not None and self.revoked_at <= instant:
            return CredentialStatus.REVOKED
        if self.valid_until <= instant:  # the same test as credit_rules.is_expired
            return CredentialStatus.EXPIRED
        return CredentialStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class CompletionWithoutCredit:
    """A completion recorded without credit (failed, course not approved, already credited...)."""

    learner_id: str
    sequence: int
    issuer_id: str
    completion_id: str
    course_id: str
    completed_at: datetime
    recorded_at: datetime
    result: str
    no_credit_reason: str

    def to_json(self) -> dict[str, JsonValue]:
        """For the read model (one JSON array per learner)."""
        return {
            "sequence": self.sequence,
            "issuer_id": self.issuer_id,
            "completion_id": self.completion_id,
            "course_id": self.course_id,
            "completed_at": format_instant(self.completed_at),
            "recorded_at": format_instant(self.recorded_at),
            "result": self.result,
            "no_credit_reason": self.no_credit_reason,
        }

    @classmethod
    def from_json(cls, learner_id: str, value: JsonValue) -> CompletionWithoutCredit:
        """Read one back; ValueError if it is not what ``to_json`` writes."""
        if not isinstance(value, Mapping):
            raise ValueError(f"a completion without credit must be an object, got {value!r}")
        sequence = value.get("sequence")
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
            raise ValueError(f"sequence must be a positive integer, got {sequence!r}")
        return cls(
            learner_id=learner_id,
            sequence=sequence,
            issuer_id=_text(value, "issuer_id"),
            completion_id=_text(value, "completion_id"),
            course_id=_text(value, "course_id"),
            completed_at=parse_instant(_text(value, "completed_at")),
            recorded_at=parse_instant(_text(value, "recorded_at")),
            result=_text(value, "result"),
            no_credit_reason=_text(value, "no_credit_reason"),
        )


@dataclass(frozen=True, slots=True)
class TranscriptState:
    """What the fold keeps for one learner."""

    learner_id: str
    last_sequence: int = 0
    ledger_position: int = 0
    credentials: Mapping[int, Credential] = field(default_factory=dict)
    completions_without_credit: int = 0
    consents: frozenset[str] = frozenset()
    #: The completions recorded without credit, by sequence; a re-decision that credits one
    #: removes it (folded from entries; the read model keeps only the count).
    without_credit: Mapping[int, CompletionWithoutCredit] = field(default_factory=dict)


class TranscriptProjection:
    """The fold: ``state = apply(state, entry)`` over a learner's entries in sequence order."""

    @staticmethod
    def initial(learner_id: str) -> TranscriptState:
        return TranscriptState(learner_id=learner_id)

    @staticmethod
    def apply(state: TranscriptState, entry: Entry) -> TranscriptState:
        """Apply one entry. Entries at or below ``last_sequence`` are skipped (idempotent);
        an entry beyond the next one raises :class:`OutOfOrderEntry`."""
        if entry.learner_id != state.learner_id:
            raise ValueError(f"entry of {entry.learner_id} applied to {state.learner_id}")
        if entry.sequence <= state.last_sequence:
            return state
        if entry.sequence != state.last_sequence + 1:
            raise OutOfOrderEntry(state.learner_id, state.last_sequence + 1, entry.sequence)
        moved = replace(state, last_sequence=entry.sequence, ledger_position=entry.position or 0)
        payload = entry.payload
        match entry.kind:
            case EntryKind.CREDIT_AWARDED:
                credential = Credential(
                    learner_id=entry.learner_id,
                    sequence=entry.sequence,
                    issuer_id=_text(payload, "issuer_id"),
                    completion_id=_text(payload, "completion_id"),
                    course_id=_text(payload, "course_id"),
                    level=_text(payload, "level"),
                    credits=Decimal(str(payload["credits"])),
                    completed_at=parse_instant(_text(payload, "completed_at")),
                    valid_until=parse_instant(_text(payload, "valid_until")),
                    recorded_at=entry.recorded_at,
                    notional_hours=_optional_int(payload, "notional_hours"),
                    hours_basis=_optional_text(payload, "hours_basis"),
                    grade=_optional_text(payload, "grade"),
                    score=_optional_number(payload, "score"),
                    evidence_url=_optional_text(payload, "evidence_url"),
                )
                redecides = payload.get("redecides_sequence")
                if redecides is not None:
                    # Credit awarded by re-decision supersedes the completion's no-credit entry.
                    moved = replace(
                        moved,
                        completions_without_credit=state.completions_without_credit - 1,
                        without_credit={
                            s: c for s, c in state.without_credit.items() if s != redecides
                        },
                    )
                return replace(moved, credentials={**state.credentials, entry.sequence: credential})
            case EntryKind.RECORDED_WITHOUT_CREDIT:
                completion = CompletionWithoutCredit(
                    learner_id=entry.learner_id,
                    sequence=entry.sequence,
                    issuer_id=_text(payload, "issuer_id"),
                    completion_id=_text(payload, "completion_id"),
                    course_id=_text(payload, "course_id"),
                    completed_at=parse_instant(_text(payload, "completed_at")),
                    recorded_at=entry.recorded_at,
                    result=_text(payload, "result"),
                    no_credit_reason=_text(payload, "no_credit_reason"),
                )
                return replace(
                    moved,
                    completions_without_credit=state.completions_without_credit + 1,
                    without_credit={**state.without_credit, entry.sequence: completion},
                )
            case EntryKind.CREDIT_REVOKED:
                revoked = payload.get("revoked_sequence")
                target = state.credentials.get(revoked) if isinstance(revoked, int) else None
                if target is None:  # revocation of a completion recorded without credit
                    return moved
                updated = replace(
                    target, revoked_by_sequence=entry.sequence, revoked_at=entry.recorded_at
                )
                return replace(moved, credentials={**state.credentials, target.sequence: updated})
            case EntryKind.CONSENT_GRANTED:
                return replace(moved, consents=state.consents | {_text(payload, "university_id")})
            case EntryKind.CONSENT_REVOKED:
                return replace(moved, consents=state.consents - {_text(payload, "university_id")})
            case EntryKind.CREDITS_REDEEMED:
                credentials = dict(state.credentials)
                lines = payload.get("lines")
                for line in lines if isinstance(lines, list) else []:
                    if not isinstance(line, Mapping) or line.get("outcome") != "redeemed":
                        continue
                    sequence = line.get("sequence")
                    target = credentials.get(sequence) if isinstance(sequence, int) else None
                    if target is None:
                        continue
                    credentials[target.sequence] = replace(
                        target,
                        redeemed_by_sequence=entry.sequence,
                        redeemed_at=entry.recorded_at,
                        redeemed_university_id=_text(payload, "university_id"),
                        redeemed_programme_id=_text(payload, "programme_id"),
                        redemption_id=_text(payload, "redemption_id"),
                    )
                return replace(moved, credentials=credentials)
            case EntryKind.REDEMPTION_REFUSED:
                return moved

    @classmethod
    def fold(
        cls, learner_id: str, entries: Iterable[Entry], *, until: datetime | None = None
    ) -> TranscriptState:
        """Fold ``entries`` (in sequence order); with ``until`` (the known-at horizon), only
        those recorded by then."""
        state = cls.initial(learner_id)
        for entry in entries:
            if until is not None and entry.recorded_at > until:
                break
            state = cls.apply(state, entry)
        return state


def held_at(state: TranscriptState, as_of: datetime) -> TranscriptState:
    """What ``state`` says the learner held at ``as_of``, by the facts' own times.

    Credentials and completions without credit completed after ``as_of`` are left out; a
    revocation or a redemption recorded after ``as_of`` is not yet in effect (its fields are
    cleared). Expiry needs nothing here: ``view_at`` evaluates it at ``as_of``.
    """
    credentials: dict[int, Credential] = {}
    for sequence, credential in state.credentials.items():
        if credential.completed_at > as_of:
            continue
        if credential.revoked_at is not None and credential.revoked_at > as_of:
            credential = replace(credential, revoked_by_sequence=None, revoked_at=None)
        if credential.redeemed_at is not None and credential.redeemed_at > as_of:
            credential = replace(
                credential,
                redeemed_by_sequence=None,
                redeemed_at=None,
                redeemed_university_id=None,
                redeemed_programme_id=None,
                redemption_id=None,
            )
        credentials[sequence] = credential
    without_credit = {
        sequence: completion
        for sequence, completion in state.without_credit.items()
        if completion.completed_at <= as_of
    }
    return replace(
        state,
        credentials=credentials,
        without_credit=without_credit,
        completions_without_credit=len(without_credit),
    )


def read_at(
    learner_id: str, entries: Iterable[Entry], *, as_of: datetime, known_at: datetime
) -> TranscriptState:
    """The learner's record as the ledger knew it at ``known_at`` (entries recorded by then),
    showing what the learner held at ``as_of``. Evaluate it with ``view_at(state, as_of)``."""
    return held_at(TranscriptProjection.fold(learner_id, entries, until=known_at), as_of)


@dataclass(frozen=True, slots=True)
class RedemptionChange:
    """What one entry changed about redemptions: the credentials it redeemed, and the redeemed
    credentials it revoked (revoked after redemption: the debit stays)."""

    redeemed: tuple[int, ...] = ()
    revoked_after_redemption: tuple[int, ...] = ()


def redemption_change(before: TranscriptState, after: TranscriptState) -> RedemptionChange:
    """Compare the states around one applied entry (``after = apply(before, entry)``)."""
    redeemed = []
    revoked = []
    for sequence, credential in sorted(after.credentials.items()):
        was = before.credentials.get(sequence)
        if credential.redeemed_at is not None and (was is None or was.redeemed_at is None):
            redeemed.append(sequence)
        if (
            credential.redeemed_at is not None
            and credential.revoked_at is not None
            and was is not None
            and was.revoked_at is None
        ):
            revoked.append(sequence)
    return RedemptionChange(tuple(redeemed), tuple(revoked))


@dataclass(frozen=True, slots=True)
class TranscriptView:
    """A transcript as read at one instant: statuses and totals evaluated then."""

    learner_id: str
    as_of: datetime
    last_sequence: int
    ledger_position: int
    credentials: tuple[tuple[Credential, CredentialStatus], ...]
    total_credits: Decimal
    active_credits: Decimal
    revoked_credits: Decimal
    expired_credits: Decimal
    #: Credits debited toward programmes, in total and by (university, programme).
    redeemed_credits: Decimal
    redeemed_by_programme: Mapping[tuple[str, str], Decimal]
    active_by_level: Mapping[str, Decimal]
    active_by_issuer: Mapping[str, Decimal]
    credits_last_365_days: Decimal
    exceeds_annual_limit: bool
    #: The annual credit limit of the rules version in force at ``as_of``.
    annual_limit: Decimal


def view_at(
    state: TranscriptState, instant: datetime, *, rules: RulesHistory = RULES
) -> TranscriptView:
    """Evaluate ``state`` at ``instant``: expired is what expired by then. The annual limit is
    that of the rules version in force at ``instant``."""
    annual_limit = rules.in_force_at(instant).annual_credit_limit
    rows = tuple(
        (credential, credential.status_at(instant))
        for _, credential in sorted(state.credentials.items())
    )
    totals = {status: Decimal(0) for status in CredentialStatus}
    by_level: dict[str, Decimal] = {}
    by_issuer: dict[str, Decimal] = {}
    by_programme: dict[tuple[str, str], Decimal] = {}
    for credential, status in rows:
        totals[status] += credential.credits
        if status is CredentialStatus.REDEEMED:
            key = (credential.redeemed_university_id or "", credential.redeemed_programme_id or "")
            by_programme[key] = by_programme.get(key, Decimal(0)) + credential.credits
        if status is CredentialStatus.ACTIVE:
            by_level[credential.level] = by_level.get(credential.level, Decimal(0)) + (
                credential.credits
            )
            by_issuer[credential.issuer_id] = by_issuer.get(credential.issuer_id, Decimal(0)) + (
                credential.credits
            )
    window_start = instant - timedelta(days=365)
    last_365 = sum(
        (
            c.credits
            for c, s in rows
            if s is not CredentialStatus.REVOKED and window_start < c.completed_at <= instant
        ),
        Decimal(0),
    )
    return TranscriptView(
        learner_id=state.learner_id,
        as_of=instant,
        last_sequence=state.last_sequence,
        ledger_position=state.ledger_position,
        credentials=rows,
        total_credits=sum(totals.values(), Decimal(0)),
        active_credits=totals[CredentialStatus.ACTIVE],
        revoked_credits=totals[CredentialStatus.REVOKED],
        expired_credits=totals[CredentialStatus.EXPIRED],
        redeemed_credits=totals[CredentialStatus.REDEEMED],
        redeemed_by_programme=by_programme,
        active_by_level=by_level,
        active_by_issuer=by_issuer,
        credits_last_365_days=last_365,
        exceeds_annual_limit=max_credits_in_any_year(
            [c for c, s in rows if s is not CredentialStatus.REVOKED]
        )
        > annual_limit,
        annual_limit=annual_limit,
    )


def max_credits_in_any_year(credentials: Iterable[Credential]) -> Decimal:
    """The most credit completed within any 365 days (docs/domain.md flags more than the rules'
    ``annual_credit_limit``)."""
    ordered = sorted(credentials, key=lambda c: c.completed_at)
    best = Decimal(0)
    window = Decimal(0)
    start = 0
    for credential in ordered:
        window += credential.credits
        while ordered[start].completed_at <= credential.completed_at - timedelta(days=365):
            window -= ordered[start].credits
            start += 1
        best = max(best, window)
    return best


def _optional_text(payload: Mapping[str, JsonValue], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _optional_int(payload: Mapping[str, JsonValue], key: str) -> int | None:
    value = payload.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _optional_number(payload: Mapping[str, JsonValue], key: str) -> float | None:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(payload: Mapping[str, JsonValue], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str):
        raise ValueError(f"entry payload field {key!r} must be a string, got {value!r}")
    return value
