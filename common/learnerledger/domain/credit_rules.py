"""The credit rules (rules version 1, docs/domain.md): from a request to an outcome.

``decide`` is a pure function: the ledger adapter gathers what it needs (the course, the
learner's earlier entry for the same completion, the university) and appends what it returns.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from learnerledger.domain.canonical_json import canonical_json
from learnerledger.domain.catalog import Course, CourseCategory, approved_periods
from learnerledger.domain.catalog import HoursBasis as HoursBasis
from learnerledger.domain.entries import EntryDraft, EntryKind, JsonValue, Payload
from learnerledger.domain.events import (
    CompletionSubmitted,
    ConsentGrantRequested,
    ConsentRevokeRequested,
    CreditRedecisionRequested,
    LedgerRequest,
    RedemptionRequested,
    Result,
    RevocationRequested,
    redecided_entry_event_id,
)
from learnerledger.domain.instants import format_instant, parse_instant
from learnerledger.domain.learners import is_apaar_id
from learnerledger.domain.redemption import (
    HeldCredential,
    Programme,
    assess,
)
from learnerledger.domain.rules_versions import RULES as RULES
from learnerledger.domain.rules_versions import RULES_VERSION as RULES_VERSION
from learnerledger.domain.rules_versions import CourseHours as CourseHours
from learnerledger.domain.rules_versions import CreditRules as CreditRules
from learnerledger.domain.rules_versions import RulesHistory as RulesHistory
from learnerledger.domain.rules_versions import UnknownRulesVersion as UnknownRulesVersion


class NoCreditReason(enum.StrEnum):
    COURSE_NOT_APPROVED = "course_not_approved"
    RESULT_FAIL = "result_fail"
    ZERO_CREDITS = "zero_credits"
    ALREADY_CREDITED = "already_credited"


class RejectionReason(enum.StrEnum):
    """Why a request did not become an entry. Rejections are kept, never dropped."""

    INVALID_EVENT = "invalid_event"
    UNKNOWN_COURSE = "unknown_course"
    FOREIGN_COURSE = "foreign_course"
    COMPLETION_CONFLICT = "completion_conflict"
    REVOCATION_TARGET_NOT_FOUND = "revocation_target_not_found"
    ALREADY_REVOKED = "already_revoked"
    UNKNOWN_UNIVERSITY = "unknown_university"
    CONSENT_NOT_GRANTED = "consent_not_granted"
    #: The request breaks a field rule (learnerledger.domain.validation): checked again by the
    #: ledger because Kafka is a trust boundary.
    INVALID_REQUEST = "invalid_request"
    #: Deciding the request raised an arithmetic or value error (a bound no rule foresaw).
    UNPROCESSABLE = "unprocessable"
    #: PostgreSQL refused to store the outcome because of its data (not an outage).
    UNSTORABLE = "unstorable"
    #: A redemption names a programme the catalog does not hold, or one of another university.
    UNKNOWN_PROGRAMME = "unknown_programme"
    FOREIGN_PROGRAMME = "foreign_programme"
    #: The same redemption id was decided before with different content.
    REDEMPTION_CONFLICT = "redemption_conflict"


def is_expired(valid_until: datetime, instant: datetime) -> bool:
    """Whether credit valid until ``valid_until`` is expired at ``instant`` (the transcript's
    CredentialStatus.EXPIRED uses the same comparison)."""
    return valid_until <= instant


@dataclass(frozen=True, slots=True)
class PriorEntry:
    """The learner's earlier entry for the same source event or completion, if any."""

    sequence: int
    kind: EntryKind
    payload: Payload


@dataclass(frozen=True, slots=True)
class Append:
    """The request becomes this entry."""

    draft: EntryDraft


@dataclass(frozen=True, slots=True)
class AlreadyRecorded:
    """The same request was decided before (a retry or a redelivery): nothing to do."""

    sequence: int


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectionReason
    detail: str


@dataclass(frozen=True, slots=True)
class Redecided:
    """A re-decision request becomes these entries (none when nothing is left to credit)."""

    drafts: tuple[EntryDraft, ...]


Decision = Append | AlreadyRecorded | Rejected | Redecided


@dataclass(frozen=True, slots=True)
class UncreditedCompletion:
    """A completion entry the learner holds that was recorded without credit because its course
    was not approved (``course_not_approved``), with what happened to it since."""

    sequence: int
    source_event_id: uuid.UUID
    payload: Payload
    revoked: bool = False
    redecided: bool = False
    #: The rules version that recorded it: its re-decision uses the same version.
    rules_version: int = RULES_VERSION


@dataclass(frozen=True, slots=True)
class Facts:
    """What the ledger looked up for one request before deciding it.

    ``same_event``: the entry already appended for this event id (a retry), if any.
    ``course``: the course a completion names. ``revocation_target``: the entry of the completion
    a revocation names (same issuer, same learner). ``target_revoked``: whether it was revoked.
    ``university_known`` / ``consent_active``: for consent requests.
    """

    same_event: PriorEntry | None = None
    course: Course | None = None
    revocation_target: PriorEntry | None = None
    target_revoked: bool = False
    university_known: bool = False
    consent_active: bool = False
    uncredited: tuple[UncreditedCompletion, ...] = ()
    #: The sequence of the learner's entry holding (unrevoked) credit for the course's credit
    #: group (the course or a version that counts as the same course), if any.
    credit_held_by: int | None = None
    #: For a redemption: the programme it names, the learner's credit entries by sequence with
    #: their state, what the learner already redeemed toward the programme by category.
    programme: Programme | None = None
    held: Mapping[int, HeldCredential] = field(default_factory=dict)
    redeemed_toward_programme: Mapping[CourseCategory, Decimal] = field(default_factory=dict)


def completion_digest(request: CompletionSubmitted) -> str:
    """A fingerprint of what the issuer stated, to tell a retry from a conflicting resubmission."""
    statement = {
        "issuer_id": request.envelope.issuer_id,
        "learner_id": request.envelope.learner_id,
        "completion_id": request.completion_id,
        "course_id": request.course_id,
        "completed_at": format_instant(request.completed_at),
        "result": request.result.value,
        "score": request.score,
        "grade": request.grade,
        "evidence_url": request.evidence_url,
    }
    return hashlib.sha256(canonical_json(statement)).hexdigest()


def decide(
    request: LedgerRequest,
    facts: Facts,
    *,
    rules: CreditRules | RulesHistory = RULES,
    now: datetime,
) -> Decision:
    """Decide one request. ``now`` becomes the entry's ``recorded_at``.

    ``rules``: every rules version; a new entry is decided with the version in force at ``now``
    and records its number, a re-decision with the version its original entry recorded. A
    single ``CreditRules`` is that version alone (as if it applied from the beginning).
    """
    history = rules if isinstance(rules, RulesHistory) else None
    if history is None:
        assert isinstance(rules, CreditRules)
        single = rules
    else:
        single = history.in_force_at(now)
    if not is_apaar_id(request.envelope.learner_id):
        return Rejected(RejectionReason.INVALID_EVENT, "learner_id is not a 12-digit APAAR id")
    match request:
        case CompletionSubmitted():
            return _decide_completion(request, facts, single, now)
        case RevocationRequested():
            return _decide_revocation(request, facts, single, now)
        case ConsentGrantRequested() | ConsentRevokeRequested():
            return _decide_consent(request, facts, single, now)
        case CreditRedecisionRequested():
            return _redecide(request, facts, history or single, now)
        case RedemptionRequested():
            return _decide_redemption(request, facts, single, now)


def _decide_redemption(
    request: RedemptionRequested, facts: Facts, rules: CreditRules, now: datetime
) -> Decision:
    """One entry per redemption request: ``credits_redeemed`` when anything was redeemed,
    ``redemption_refused`` otherwise; both list every credential with its outcome."""
    if facts.same_event is not None:
        if facts.same_event.payload.get("request_digest") == request.request_digest:
            return AlreadyRecorded(facts.same_event.sequence)
        return Rejected(
            RejectionReason.REDEMPTION_CONFLICT,
            f"redemption {request.redemption_id} was decided at sequence "
            f"{facts.same_event.sequence} with different content",
        )
    programme = facts.programme
    if programme is None:
        return Rejected(
            RejectionReason.UNKNOWN_PROGRAMME, f"programme {request.programme_id} is unknown"
        )
    if programme.university_id != request.university_id:
        return Rejected(
            RejectionReason.FOREIGN_PROGRAMME,
            f"programme {programme.programme_id} is not university {request.university_id}'s",
        )
    assessment = assess(
        programme=programme,
        held=facts.held,
        asked=None if request.all_eligible else request.credential_sequences,
        already_redeemed=facts.redeemed_toward_programme,
        consent=facts.consent_active,
        allow_partial=request.allow_partial,
        instant=now,
        rules=rules.redemption,
    )
    payload: dict[str, JsonValue] = {
        "redemption_id": request.redemption_id,
        "university_id": request.university_id,
        "programme_id": programme.programme_id,
        "programme_credits": float(programme.total_credits),
        "all_eligible": request.all_eligible,
        "allow_partial": request.allow_partial,
        "request_digest": request.request_digest,
        "lines": [line.to_json() for line in assessment.lines],
        "redeemed_credits": float(assessment.redeemed_credits),
    }
    kind = EntryKind.CREDITS_REDEEMED if assessment.redeemed else EntryKind.REDEMPTION_REFUSED
    return _append(request, kind, payload, rules, now)


def _decide_completion(
    request: CompletionSubmitted, facts: Facts, rules: CreditRules, now: datetime
) -> Decision:
    digest = completion_digest(request)
    if facts.same_event is not None:
        if facts.same_event.payload.get("completion_digest") == digest:
            return AlreadyRecorded(facts.same_event.sequence)
        return Rejected(
            RejectionReason.COMPLETION_CONFLICT,
            f"completion {request.completion_id} was recorded at sequence "
            f"{facts.same_event.sequence} with different content",
        )
    course = facts.course
    if course is None:
        return Rejected(RejectionReason.UNKNOWN_COURSE, f"course {request.course_id} is unknown")
    if course.issuer_id != request.envelope.issuer_id:
        return Rejected(
            RejectionReason.FOREIGN_COURSE,
            f"course {course.course_id} is not in issuer {request.envelope.issuer_id}'s catalog",
        )
    hours = CourseHours.of(course)
    credits = rules.credits(hours)
    payload: dict[str, JsonValue] = {
        "issuer_id": request.envelope.issuer_id,
        "completion_id": request.completion_id,
        "course_id": course.course_id,
        "level": str(course.level),
        "notional_hours": course.notional_hours,
        "hours_basis": hours.basis.value,
        **_component_hours(hours),
        "completed_at": format_instant(request.completed_at),
        "result": request.result.value,
        "score": request.score,
        "grade": request.grade,
        "evidence_url": request.evidence_url,
        "completion_digest": digest,
    }
    no_credit: NoCreditReason | None = None
    if not course.approved_at(request.completed_at):
        no_credit = NoCreditReason.COURSE_NOT_APPROVED
    elif request.result is Result.FAIL:
        no_credit = NoCreditReason.RESULT_FAIL
    elif credits == 0:
        no_credit = NoCreditReason.ZERO_CREDITS
    elif facts.credit_held_by is not None:
        no_credit = NoCreditReason.ALREADY_CREDITED
        payload["credited_sequence"] = facts.credit_held_by
    if no_credit is None:
        valid_until = rules.valid_until(request.completed_at)
        payload["credits"] = float(credits)
        payload["valid_until"] = format_instant(valid_until)
        if is_expired(valid_until, now):
            # Older than the validity period when decided: expired from the start (the
            # transcript and GetCompletionStatus show it as expired, with valid_until).
            payload["born_expired"] = True
        kind = EntryKind.CREDIT_AWARDED
    else:
        payload["credits"] = 0
        payload["no_credit_reason"] = no_credit.value
        kind = EntryKind.RECORDED_WITHOUT_CREDIT
    return _append(request, kind, payload, rules, now)


def _component_hours(hours: CourseHours) -> dict[str, JsonValue]:
    """The hours per component, on entries of courses that declare them (only new entries
    carry these keys: an entry decided before they existed keeps its payload and hash)."""
    if not hours.has_components:
        return {}
    return {
        "theory_hours": hours.theory,
        "practical_hours": hours.practical,
        "experiential_hours": hours.experiential,
    }


def _redecide(
    request: CreditRedecisionRequested,
    facts: Facts,
    versions: CreditRules | RulesHistory,
    now: datetime,
) -> Decision:
    """Credit the learner's completions of the course that were recorded without credit and
    whose ``completed_at`` the course's approval history now covers.

    Each new entry references the original entry (``redecides_sequence``) and the approval whose
    period contains ``completed_at``; its source event id is derived from exactly that pair, so
    it lands at most once. Revoked, already re-decided and failed completions earn nothing, and
    a learner who holds credit for the course (or a version of it) earns no second one.
    """
    course = facts.course
    if course is None:
        return Rejected(RejectionReason.UNKNOWN_COURSE, f"course {request.course_id} is unknown")
    periods = approved_periods(course.history)
    hours = CourseHours.of(course)
    drafts: list[EntryDraft] = []
    for original in sorted(facts.uncredited, key=lambda u: u.sequence):
        p = original.payload
        # The version that recorded the original decides again (a replay of that decision).
        rules = (
            versions.version(original.rules_version)
            if isinstance(versions, RulesHistory)
            else versions
        )
        credits = rules.credits(hours)
        if (
            facts.credit_held_by is not None  # a course is credited once per learner
            or drafts
            or original.revoked
            or original.redecided
            or credits == 0
            or p.get("course_id") != course.course_id
            or p.get("no_credit_reason") != NoCreditReason.COURSE_NOT_APPROVED.value
            or p.get("result") != Result.PASS.value
        ):
            continue
        completed_at = parse_instant(str(p["completed_at"]))
        period = next((period for period in periods if period.contains(completed_at)), None)
        if period is None:
            continue
        payload: dict[str, JsonValue] = {k: v for k, v in p.items() if k != "no_credit_reason"}
        if is_expired(rules.valid_until(completed_at), now):
            payload["born_expired"] = True
        payload.update(
            level=str(course.level),
            notional_hours=course.notional_hours,
            hours_basis=hours.basis.value,
            **_component_hours(hours),
            credits=float(credits),
            valid_until=format_instant(rules.valid_until(completed_at)),
            redecides_sequence=original.sequence,
            approval_id=str(period.change_id),
        )
        drafts.append(
            EntryDraft(
                learner_id=request.envelope.learner_id,
                kind=EntryKind.CREDIT_AWARDED,
                payload=payload,
                rules_version=rules.version,
                source_event_id=redecided_entry_event_id(
                    period.change_id, original.source_event_id
                ),
                recorded_at=now,
            )
        )
    return Redecided(tuple(drafts))


def _decide_revocation(
    request: RevocationRequested, facts: Facts, rules: CreditRules, now: datetime
) -> Decision:
    if facts.same_event is not None:
        return AlreadyRecorded(facts.same_event.sequence)
    target = facts.revocation_target
    if target is None:
        return Rejected(
            RejectionReason.REVOCATION_TARGET_NOT_FOUND,
            f"issuer {request.envelope.issuer_id} has no completion {request.completion_id} "
            f"for this learner",
        )
    if facts.target_revoked:
        return Rejected(
            RejectionReason.ALREADY_REVOKED,
            f"completion {request.completion_id} (sequence {target.sequence}) is already revoked",
        )
    payload: dict[str, JsonValue] = {
        "issuer_id": request.envelope.issuer_id,
        "completion_id": request.completion_id,
        "revoked_sequence": target.sequence,
        "credits": target.payload.get("credits", 0),
        "reason": request.reason,
    }
    return _append(request, EntryKind.CREDIT_REVOKED, payload, rules, now)


def _decide_consent(
    request: ConsentGrantRequested | ConsentRevokeRequested,
    facts: Facts,
    rules: CreditRules,
    now: datetime,
) -> Decision:
    if facts.same_event is not None:
        return AlreadyRecorded(facts.same_event.sequence)
    if not facts.university_known:
        return Rejected(
            RejectionReason.UNKNOWN_UNIVERSITY, f"university {request.university_id} is unknown"
        )
    if isinstance(request, ConsentRevokeRequested) and not facts.consent_active:
        return Rejected(
            RejectionReason.CONSENT_NOT_GRANTED,
            f"the learner has no active consent for university {request.university_id}",
        )
    kind = (
        EntryKind.CONSENT_GRANTED
        if isinstance(request, ConsentGrantRequested)
        else EntryKind.CONSENT_REVOKED
    )
    payload: dict[str, JsonValue] = {"university_id": request.university_id}
    # Only what the request says: an event written before consent had a basis, purpose or
    # expiry decides to the same payload (and hash) as it did then.
    if request.basis is not None:
        payload["basis"] = request.basis.value
    if isinstance(request, ConsentGrantRequested):
        if request.purpose:
            payload["purpose"] = request.purpose
        if request.expire_time is not None:
            payload["expire_time"] = format_instant(request.expire_time)
    return _append(request, kind, payload, rules, now)


def _append(
    request: LedgerRequest,
    kind: EntryKind,
    payload: dict[str, JsonValue],
    rules: CreditRules,
    now: datetime,
) -> Append:
    return Append(
        EntryDraft(
            learner_id=request.envelope.learner_id,
            kind=kind,
            payload=payload,
            rules_version=rules.version,
            source_event_id=request.envelope.event_id,
            recorded_at=now,
        )
    )
