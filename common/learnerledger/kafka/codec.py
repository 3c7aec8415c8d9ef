"""Between the wire (protobuf, ``learnerledger.v1``) and the domain.

Decoding is strict: bytes that are not a valid event raise :class:`UndecodableEvent` with a
machine-readable reason, and the ledger sends them to the dead-letter topic.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from learnerledger.domain.catalog import (
    NCRF_ALL_LEVELS,
    Course,
    CourseCategory,
    CreditRecommendation,
    HoursBasis,
    InvalidCourse,
    change_in_force,
    parse_level,
)
from learnerledger.domain.checkpoints import Coverage, Discrepancy, SignedCheckpoint
from learnerledger.domain.entries import Entry, EntryKind, JsonValue
from learnerledger.domain.events import (
    CURRENT_SCHEMA_VERSION,
    CompletionSubmitted,
    ConsentBasis,
    ConsentGrantRequested,
    ConsentRevokeRequested,
    CreditRedecisionRequested,
    Envelope,
    LedgerRequest,
    RedemptionRequested,
    Result,
    RevocationRequested,
)
from learnerledger.domain.hash_chain import ChainBreak
from learnerledger.domain.instants import parse_instant
from learnerledger.domain.redemption import Outcome
from learnerledger.v1 import common_pb2, events_pb2

LEVEL_TO_PROTO: dict[str, common_pb2.NcrfLevel.ValueType] = {
    "4.5": common_pb2.NCRF_LEVEL_4_5,
    "5": common_pb2.NCRF_LEVEL_5,
    "5.5": common_pb2.NCRF_LEVEL_5_5,
    "6": common_pb2.NCRF_LEVEL_6,
    "6.5": common_pb2.NCRF_LEVEL_6_5,
    "7": common_pb2.NCRF_LEVEL_7,
    "8": common_pb2.NCRF_LEVEL_8,
    "1": common_pb2.NCRF_LEVEL_1,
    "1.5": common_pb2.NCRF_LEVEL_1_5,
    "2": common_pb2.NCRF_LEVEL_2,
    "2.5": common_pb2.NCRF_LEVEL_2_5,
    "3": common_pb2.NCRF_LEVEL_3,
    "3.5": common_pb2.NCRF_LEVEL_3_5,
    "4": common_pb2.NCRF_LEVEL_4,
    "7.5": common_pb2.NCRF_LEVEL_7_5,
}
PROTO_TO_LEVEL: dict[common_pb2.NcrfLevel.ValueType, str] = {
    v: k for k, v in LEVEL_TO_PROTO.items()
}
RESULT_TO_PROTO = {
    Result.PASS: common_pb2.COMPLETION_RESULT_PASS,
    Result.FAIL: common_pb2.COMPLETION_RESULT_FAIL,
}
PROTO_TO_RESULT = {v: k for k, v in RESULT_TO_PROTO.items()}
KIND_TO_PROTO = {
    EntryKind.CREDIT_AWARDED: events_pb2.ENTRY_KIND_CREDIT_AWARDED,
    EntryKind.RECORDED_WITHOUT_CREDIT: events_pb2.ENTRY_KIND_RECORDED_WITHOUT_CREDIT,
    EntryKind.CREDIT_REVOKED: events_pb2.ENTRY_KIND_CREDIT_REVOKED,
    EntryKind.CONSENT_GRANTED: events_pb2.ENTRY_KIND_CONSENT_GRANTED,
    EntryKind.CONSENT_REVOKED: events_pb2.ENTRY_KIND_CONSENT_REVOKED,
    EntryKind.CREDITS_REDEEMED: events_pb2.ENTRY_KIND_CREDITS_REDEEMED,
    EntryKind.REDEMPTION_REFUSED: events_pb2.ENTRY_KIND_REDEMPTION_REFUSED,
}
CATEGORY_TO_PROTO: dict[CourseCategory, common_pb2.CourseCategory.ValueType] = {
    CourseCategory.SWAYAM_MOOC: common_pb2.COURSE_CATEGORY_SWAYAM_MOOC,
    CourseCategory.MICRO_CREDENTIAL: common_pb2.COURSE_CATEGORY_MICRO_CREDENTIAL,
    CourseCategory.UNIVERSITY_COURSE: common_pb2.COURSE_CATEGORY_UNIVERSITY_COURSE,
    CourseCategory.SKILLING: common_pb2.COURSE_CATEGORY_SKILLING,
}
PROTO_TO_CATEGORY = {v: k for k, v in CATEGORY_TO_PROTO.items()}
RECOMMENDATION_TO_PROTO: dict[CreditRecommendation, common_pb2.CreditRecommendation.ValueType] = {
    CreditRecommendation.PENDING: common_pb2.CREDIT_RECOMMENDATION_PENDING,
    CreditRecommendation.APPROVED: common_pb2.CREDIT_RECOMMENDATION_APPROVED,
    CreditRecommendation.WITHDRAWN: common_pb2.CREDIT_RECOMMENDATION_WITHDRAWN,
}
OUTCOME_TO_PROTO: dict[Outcome, common_pb2.RedemptionOutcome.ValueType] = {
    Outcome.REDEEMED: common_pb2.REDEMPTION_OUTCOME_REDEEMED,
    Outcome.EXPIRED: common_pb2.REDEMPTION_OUTCOME_EXPIRED,
    Outcome.REVOKED: common_pb2.REDEMPTION_OUTCOME_REVOKED,
    Outcome.ALREADY_REDEEMED: common_pb2.REDEMPTION_OUTCOME_ALREADY_REDEEMED,
    Outcome.CAP_EXCEEDED: common_pb2.REDEMPTION_OUTCOME_CAP_EXCEEDED,
    Outcome.LEVEL_MISMATCH: common_pb2.REDEMPTION_OUTCOME_LEVEL_MISMATCH,
    Outcome.NO_CONSENT: common_pb2.REDEMPTION_OUTCOME_NO_CONSENT,
    Outcome.NOT_A_CREDENTIAL: common_pb2.REDEMPTION_OUTCOME_NOT_A_CREDENTIAL,
    Outcome.WITHHELD: common_pb2.REDEMPTION_OUTCOME_WITHHELD,
}
HOURS_BASIS_TO_PROTO = {
    "ncrf": common_pb2.HOURS_BASIS_NCRF,
    "nheqf_theory": common_pb2.HOURS_BASIS_NHEQF_THEORY,
    "nheqf_practical": common_pb2.HOURS_BASIS_NHEQF_PRACTICAL,
    "nheqf": common_pb2.HOURS_BASIS_NHEQF,
}
#: The bases a course may declare on CreateCourse (UNSPECIFIED: NCrF).
PROTO_TO_COURSE_BASIS: dict[common_pb2.HoursBasis.ValueType, HoursBasis] = {
    common_pb2.HOURS_BASIS_UNSPECIFIED: HoursBasis.NCRF,
    common_pb2.HOURS_BASIS_NCRF: HoursBasis.NCRF,
    common_pb2.HOURS_BASIS_NHEQF: HoursBasis.NHEQF,
}
NO_CREDIT_TO_PROTO = {
    "course_not_approved": events_pb2.NO_CREDIT_REASON_COURSE_NOT_APPROVED,
    "result_fail": events_pb2.NO_CREDIT_REASON_RESULT_FAIL,
    "zero_credits": events_pb2.NO_CREDIT_REASON_ZERO_CREDITS,
    "already_credited": events_pb2.NO_CREDIT_REASON_ALREADY_CREDITED,
}


class UndecodableEvent(Exception):
    """The bytes are not an event this reader understands."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# Upcasters: each turns an event of schema version N into version N + 1, in place. A reader of
# version CURRENT_SCHEMA_VERSION applies them in order to anything older it meets (a replay of
# old topics, a re-drive of old rejections). Version 1 is the first; add one entry per bump.
Upcaster = Callable[[events_pb2.CompletionEvent], None]


def _evidence_into_list(event: events_pb2.CompletionEvent) -> None:
    """Version 1 → 2: a completion's single ``evidence_url`` becomes ``evidence_urls[0]``."""
    if event.WhichOneof("event") != "completion_submitted":
        return
    submitted = event.completion_submitted
    if submitted.completion.evidence_url and not submitted.evidence_urls:
        submitted.evidence_urls.append(submitted.completion.evidence_url)
    submitted.completion.evidence_url = ""


UPCASTERS: dict[int, Upcaster] = {1: _evidence_into_list}


def upcast(event: events_pb2.CompletionEvent, *, target: int = CURRENT_SCHEMA_VERSION) -> None:
    version = event.envelope.schema_version
    if version < 1 or version > target:
        raise UndecodableEvent(
            "unsupported_schema_version",
            f"schema_version {version} (this reader understands 1..{target})",
        )
    while version < target:
        UPCASTERS[version](event)
        version += 1
        event.envelope.schema_version = version


def to_timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


#: The instants a request or a record may name: the year 1000 to the year 9000. Outside, protobuf
#: may not convert the value at all (it allows 0001..9999 only), and the domain's arithmetic on an
#: instant (a year back for the annual limit, seven years on for validity) would overflow.
EARLIEST_INSTANT = datetime(1000, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)


class InstantOutOfRange(ValueError):
    """A Timestamp that is not a valid instant between :data:`EARLIEST_INSTANT` and
    :data:`LATEST_INSTANT`; ``description`` says so in words fit for a field violation."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def from_timestamp(stamp: Timestamp) -> datetime:
    """The one conversion of a Timestamp read from a request or a record to a datetime (UTC).

    Raises :class:`InstantOutOfRange` for nanos outside 0..999,999,999, for seconds protobuf
    cannot convert, and for instants outside :data:`EARLIEST_INSTANT`..:data:`LATEST_INSTANT`.
    """
    if not 0 <= stamp.nanos <= 999_999_999:
        raise InstantOutOfRange("nanos must be 0 to 999999999")
    try:
        value = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InstantOutOfRange(
            f"must be between {EARLIEST_INSTANT:%Y-%m-%d} and {LATEST_INSTANT:%Y-%m-%d}"
        ) from exc
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise InstantOutOfRange(
            f"must be between {EARLIEST_INSTANT:%Y-%m-%d} and {LATEST_INSTANT:%Y-%m-%d}"
        )
    return value


def decode_completion_event(value: bytes | None) -> LedgerRequest:
    """Decode a ``completions.v1`` record value into a domain request."""
    if not value:
        raise UndecodableEvent("empty_value", "the record has no value")
    event = events_pb2.CompletionEvent()
    try:
        event.ParseFromString(value)
    except DecodeError as exc:
        raise UndecodableEvent("not_protobuf", f"cannot parse CompletionEvent: {exc}") from exc
    if not event.HasField("envelope"):
        raise UndecodableEvent("missing_envelope", "CompletionEvent has no envelope")
    upcast(event)
    env = event.envelope
    try:
        event_id = uuid.UUID(env.event_id)
    except ValueError as exc:
        raise UndecodableEvent(
            "invalid_event_id", f"event_id {env.event_id!r} is not a UUID"
        ) from exc
    envelope = Envelope(
        event_id=event_id,
        schema_version=env.schema_version,
        occurred_at=_instant(env.occurred_at, "envelope.occurred_at"),
        issuer_id=env.issuer_id,
        learner_id=env.learner_id,
    )
    match event.WhichOneof("event"):
        case "completion_submitted":
            c = event.completion_submitted.completion
            if c.result not in PROTO_TO_RESULT:
                raise UndecodableEvent("invalid_field", "completion.result is unspecified")
            if c.learner_id != env.learner_id:
                raise UndecodableEvent(
                    "invalid_field", "completion.learner_id differs from envelope"
                )
            which = c.WhichOneof("assessment")
            return CompletionSubmitted(
                envelope=envelope,
                completion_id=c.completion_id,
                course_id=c.course_id,
                completed_at=_instant(c.completed_at, "completion.completed_at"),
                result=PROTO_TO_RESULT[c.result],
                score=c.score if which == "score" else None,
                grade=c.grade if which == "grade" else None,
                evidence_url=next(iter(event.completion_submitted.evidence_urls), ""),
            )
        case "revocation_requested":
            r = event.revocation_requested
            return RevocationRequested(envelope, r.completion_id, r.reason)
        case "consent_grant_requested":
            grant = event.consent_grant_requested
            return ConsentGrantRequested(
                envelope,
                grant.university_id,
                purpose=grant.purpose,
                expire_time=(
                    _instant(grant.expire_time, "consent_grant_requested.expire_time")
                    if grant.HasField("expire_time")
                    else None
                ),
                basis=_basis(grant.basis, "consent_grant_requested.basis"),
            )
        case "consent_revoke_requested":
            revoke = event.consent_revoke_requested
            return ConsentRevokeRequested(
                envelope,
                revoke.university_id,
                basis=_basis(revoke.basis, "consent_revoke_requested.basis"),
            )
        case "credit_redecision_requested":
            redecision = event.credit_redecision_requested
            try:
                approval_id = uuid.UUID(redecision.approval_id)
            except ValueError as exc:
                raise UndecodableEvent(
                    "invalid_field", "credit_redecision_requested.approval_id is not a UUID"
                ) from exc
            return CreditRedecisionRequested(envelope, redecision.course_id, approval_id)
        case "redemption_requested":
            asked = event.redemption_requested
            return RedemptionRequested(
                envelope,
                redemption_id=asked.redemption_id,
                university_id=asked.university_id,
                programme_id=asked.programme_id,
                credential_sequences=tuple(asked.credential_sequences),
                all_eligible=asked.all_eligible,
                allow_partial=asked.allow_partial,
                request_digest=asked.request_digest,
            )
        case _:
            raise UndecodableEvent("missing_event", "CompletionEvent carries no event")


def encode_completion_event(request: LedgerRequest) -> bytes:
    """A ``completions.v1`` value, always in the current schema version."""
    env = request.envelope
    event = events_pb2.CompletionEvent(
        envelope=events_pb2.EventEnvelope(
            event_id=str(env.event_id),
            schema_version=CURRENT_SCHEMA_VERSION,
            occurred_at=to_timestamp(env.occurred_at),
            issuer_id=env.issuer_id,
            learner_id=env.learner_id,
        )
    )
    match request:
        case CompletionSubmitted():
            completion = common_pb2.Completion(
                completion_id=request.completion_id,
                learner_id=env.learner_id,
                course_id=request.course_id,
                completed_at=to_timestamp(request.completed_at),
                result=RESULT_TO_PROTO[request.result],
            )
            if request.score is not None:
                completion.score = request.score
            elif request.grade is not None:
                completion.grade = request.grade
            event.completion_submitted.completion.CopyFrom(completion)
            if request.evidence_url:
                event.completion_submitted.evidence_urls.append(request.evidence_url)
        case RevocationRequested():
            event.revocation_requested.completion_id = request.completion_id
            event.revocation_requested.reason = request.reason
        case ConsentGrantRequested():
            grant = event.consent_grant_requested
            grant.university_id = request.university_id
            grant.purpose = request.purpose
            if request.expire_time is not None:
                grant.expire_time.CopyFrom(to_timestamp(request.expire_time))
            if request.basis is not None:
                grant.basis = BASIS_TO_PROTO[request.basis]
        case ConsentRevokeRequested():
            event.consent_revoke_requested.university_id = request.university_id
            if request.basis is not None:
                event.consent_revoke_requested.basis = BASIS_TO_PROTO[request.basis]
        case CreditRedecisionRequested():
            event.credit_redecision_requested.course_id = request.course_id
            event.credit_redecision_requested.approval_id = str(request.approval_id)
        case RedemptionRequested():
            event.redemption_requested.CopyFrom(
                events_pb2.RedemptionRequested(
                    redemption_id=request.redemption_id,
                    university_id=request.university_id,
                    programme_id=request.programme_id,
                    credential_sequences=list(request.credential_sequences),
                    all_eligible=request.all_eligible,
                    allow_partial=request.allow_partial,
                    request_digest=request.request_digest,
                )
            )
    return event.SerializeToString(deterministic=True)


def encode_ledger_entry(entry: Entry) -> bytes:
    """A ``ledger.entries.v1`` value: the entry, its hashes and the exact bytes hashed."""
    message = events_pb2.LedgerEntry(
        position=entry.position or 0,
        learner_id=entry.learner_id,
        sequence=entry.sequence,
        kind=KIND_TO_PROTO[entry.kind],
        rules_version=entry.rules_version,
        source_event_id=str(entry.source_event_id),
        source_partition=entry.source_partition or 0,
        source_offset=entry.source_offset or 0,
        prev_hash=entry.prev_hash,
        entry_hash=entry.entry_hash,
        recorded_at=to_timestamp(entry.recorded_at),
        canonical_json=entry.canonical_json,
    )
    p = entry.payload
    match entry.kind:
        case EntryKind.CREDIT_AWARDED:
            detail = message.credit_awarded
            detail.issuer_id, detail.completion_id = str(p["issuer_id"]), str(p["completion_id"])
            detail.course_id, detail.level = str(p["course_id"]), LEVEL_TO_PROTO[str(p["level"])]
            detail.notional_hours = int(str(p["notional_hours"]))
            detail.credits = float(str(p["credits"]))
            detail.hours_basis = HOURS_BASIS_TO_PROTO[str(p["hours_basis"])]
            detail.completed_at.CopyFrom(to_timestamp(parse_instant(str(p["completed_at"]))))
            detail.valid_until.CopyFrom(to_timestamp(parse_instant(str(p["valid_until"]))))
            detail.evidence_url = str(p.get("evidence_url") or "")
            detail.result = RESULT_TO_PROTO[Result(str(p["result"]))]
            if p.get("score") is not None:
                detail.score = float(str(p["score"]))
            elif p.get("grade") is not None:
                detail.grade = str(p["grade"])
            if p.get("redecides_sequence") is not None:
                detail.redecides_sequence = int(str(p["redecides_sequence"]))
                detail.approval_id = str(p["approval_id"])
            detail.theory_hours = int(str(p.get("theory_hours", 0)))
            detail.practical_hours = int(str(p.get("practical_hours", 0)))
            detail.experiential_hours = int(str(p.get("experiential_hours", 0)))
        case EntryKind.RECORDED_WITHOUT_CREDIT:
            without = message.recorded_without_credit
            without.issuer_id, without.completion_id = str(p["issuer_id"]), str(p["completion_id"])
            without.course_id = str(p["course_id"])
            without.reason = NO_CREDIT_TO_PROTO[str(p["no_credit_reason"])]
            without.completed_at.CopyFrom(to_timestamp(parse_instant(str(p["completed_at"]))))
            without.result = RESULT_TO_PROTO[Result(str(p["result"]))]
            if p.get("credited_sequence") is not None:
                without.credited_sequence = int(str(p["credited_sequence"]))
        case EntryKind.CREDIT_REVOKED:
            revoked = message.credit_revoked
            revoked.issuer_id, revoked.completion_id = str(p["issuer_id"]), str(p["completion_id"])
            revoked.revoked_sequence = int(str(p["revoked_sequence"]))
            revoked.credits = float(str(p["credits"]))
            revoked.reason = str(p.get("reason") or "")
        case EntryKind.CONSENT_GRANTED:
            granted = message.consent_granted
            granted.university_id = str(p["university_id"])
            granted.purpose = str(p.get("purpose") or "")
            if p.get("expire_time"):
                granted.expire_time.CopyFrom(to_timestamp(parse_instant(str(p["expire_time"]))))
            if p.get("basis"):
                granted.basis = BASIS_TO_PROTO[ConsentBasis(str(p["basis"]))]
        case EntryKind.CONSENT_REVOKED:
            message.consent_revoked.university_id = str(p["university_id"])
            if p.get("basis"):
                message.consent_revoked.basis = BASIS_TO_PROTO[ConsentBasis(str(p["basis"]))]
        case EntryKind.CREDITS_REDEEMED:
            message.credits_redeemed.CopyFrom(redemption_decided_to_proto(p))
        case EntryKind.REDEMPTION_REFUSED:
            message.redemption_refused.CopyFrom(redemption_decided_to_proto(p))
    return message.SerializeToString(deterministic=True)


def redemption_lines_to_proto(payload: Mapping[str, JsonValue]) -> list[common_pb2.RedemptionLine]:
    """The lines of a credits_redeemed / redemption_refused entry's payload."""
    lines = payload.get("lines")
    out = []
    for line in lines if isinstance(lines, list) else []:
        if not isinstance(line, Mapping):
            continue
        category = line.get("category")
        out.append(
            common_pb2.RedemptionLine(
                sequence=int(str(line["sequence"])),
                outcome=OUTCOME_TO_PROTO[Outcome(str(line["outcome"]))],
                credits=float(str(line["credits"])),
                category=CATEGORY_TO_PROTO[CourseCategory(category)]
                if isinstance(category, str)
                else common_pb2.COURSE_CATEGORY_UNSPECIFIED,
                course_id=str(line.get("course_id") or ""),
            )
        )
    return out


def redemption_decided_to_proto(p: Mapping[str, JsonValue]) -> events_pb2.RedemptionDecided:
    return events_pb2.RedemptionDecided(
        redemption_id=str(p["redemption_id"]),
        university_id=str(p["university_id"]),
        programme_id=str(p["programme_id"]),
        programme_credits=float(str(p["programme_credits"])),
        all_eligible=bool(p.get("all_eligible")),
        allow_partial=bool(p.get("allow_partial")),
        lines=redemption_lines_to_proto(p),
        redeemed_credits=float(str(p["redeemed_credits"])),
    )


def decode_ledger_entry(value: bytes) -> Entry:
    """Rebuild the domain entry from a ``ledger.entries.v1`` value.

    The payload is taken from ``canonical_json`` (the bytes that were hashed), so what a reader
    folds is exactly what the chain vouches for.
    """
    message = events_pb2.LedgerEntry()
    try:
        message.ParseFromString(value)
        document = json.loads(message.canonical_json)
    except (DecodeError, ValueError) as exc:
        raise UndecodableEvent("invalid_ledger_entry", str(exc)) from exc
    return Entry(
        learner_id=message.learner_id,
        sequence=message.sequence,
        kind=EntryKind(document["kind"]),
        payload=document["payload"],
        rules_version=message.rules_version,
        source_event_id=uuid.UUID(message.source_event_id),
        recorded_at=parse_instant(document["recorded_at"]),
        prev_hash=message.prev_hash,
        entry_hash=message.entry_hash,
        canonical_json=bytes(message.canonical_json),
        position=message.position,
        source_partition=message.source_partition,
        source_offset=message.source_offset,
    )


def encode_dead_letter(
    *,
    original_key: bytes | None,
    original_value: bytes | None,
    reason: str,
    detail: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
) -> bytes:
    return events_pb2.DeadLetter(
        original_key=original_key or b"",
        original_value=original_value or b"",
        reason=reason,
        detail=detail,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
    ).SerializeToString(deterministic=True)


BASIS_TO_PROTO = {
    ConsentBasis.LEARNER: common_pb2.CONSENT_BASIS_LEARNER,
    ConsentBasis.MANDATE: common_pb2.CONSENT_BASIS_MANDATE,
}
PROTO_TO_BASIS = {v: k for k, v in BASIS_TO_PROTO.items()}


def _basis(value: int, field: str) -> ConsentBasis | None:
    """Unspecified (events written before the basis was recorded): None."""
    if value == common_pb2.CONSENT_BASIS_UNSPECIFIED:
        return None
    try:
        return PROTO_TO_BASIS[value]  # type: ignore[index]
    except KeyError as exc:
        raise UndecodableEvent("invalid_field", f"{field} {value} is not a known basis") from exc


def _instant(stamp: Timestamp, field: str) -> datetime:
    if stamp.seconds == 0 and stamp.nanos == 0:
        raise UndecodableEvent("invalid_field", f"{field} is not set")
    try:
        return from_timestamp(stamp)
    except InstantOutOfRange as exc:
        raise UndecodableEvent("invalid_field", f"{field} {exc.description}") from exc


def chain_break_to_proto(found: ChainBreak) -> common_pb2.ChainBreak:
    return common_pb2.ChainBreak(
        learner_id=found.learner_id,
        sequence=found.sequence,
        expected_hash=found.expected_hash,
        stored_hash=found.stored_hash,
        reason=found.reason,
    )


def signed_checkpoint_to_proto(
    signed: SignedCheckpoint, number: int = 0
) -> common_pb2.SignedCheckpoint:
    checkpoint = signed.checkpoint
    return common_pb2.SignedCheckpoint(
        position=checkpoint.position,
        tx_horizon=checkpoint.tx_horizon,
        root_hash=checkpoint.root_hash,
        learner_count=checkpoint.learner_count,
        signed_at=to_timestamp(checkpoint.signed_at),
        signature=signed.signature,
        public_key=signed.public_key,
        key_id=signed.key_id,
        previous_digest=checkpoint.previous or b"",
        changed_root=checkpoint.changed_root or b"",
        changed_count=checkpoint.changed_count,
        number=number,
    )


COVERAGE_TO_PROTO = {
    Coverage.VERIFIED: common_pb2.CHECKPOINT_COVERAGE_VERIFIED,
    Coverage.NO_CHECKPOINT: common_pb2.CHECKPOINT_COVERAGE_NO_CHECKPOINT,
    Coverage.NOT_COVERED: common_pb2.CHECKPOINT_COVERAGE_NOT_COVERED,
    Coverage.BROKEN: common_pb2.CHECKPOINT_COVERAGE_BROKEN,
}


def checkpoint_problem_to_proto(problem: Discrepancy) -> common_pb2.CheckpointProblem:
    return common_pb2.CheckpointProblem(
        checkpoint_number=problem.checkpoint_number or 0,
        learner_id=problem.learner_id or "",
        reason=problem.reason,
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
