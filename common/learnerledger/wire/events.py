"""Completion requests, ``CompletionEvent`` and ``LedgerEntry`` <-> the domain.

Reading is strict: a message that is not a valid request or entry raises
:class:`InvalidMessage` with a machine-readable reason (``learnerledger.kafka.codec`` turns it
into an undecodable record for the dead-letter topic).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from learnerledger.domain.entries import Entry, EntryKind
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
    completion_event_id,
    revocation_event_id,
)
from learnerledger.domain.instants import parse_instant
from learnerledger.v1 import common_pb2, events_pb2, issuer_gateway_pb2
from learnerledger.wire.enums import (
    BASIS_TO_PROTO,
    HOURS_BASIS_TO_PROTO,
    KIND_TO_PROTO,
    LEVEL_TO_PROTO,
    NO_CREDIT_TO_PROTO,
    PROTO_TO_BASIS,
    PROTO_TO_RESULT,
    RESULT_TO_PROTO,
)
from learnerledger.wire.instants import InstantOutOfRange, from_timestamp, to_timestamp
from learnerledger.wire.redemptions import redemption_decided_to_proto


class InvalidMessage(ValueError):
    """The message is not a request or an entry this reader understands."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def completion_from_proto(
    completion: common_pb2.Completion, *, issuer_id: str, now: datetime
) -> CompletionSubmitted:
    """The domain request of a completion an issuer submitted, once it passed the gateway's
    validation (a valid ``completed_at`` and a result)."""
    which = completion.WhichOneof("assessment")
    return CompletionSubmitted(
        envelope=Envelope(
            event_id=completion_event_id(issuer_id, completion.completion_id),
            schema_version=CURRENT_SCHEMA_VERSION,
            occurred_at=now,
            issuer_id=issuer_id,
            learner_id=completion.learner_id,
        ),
        completion_id=completion.completion_id,
        course_id=completion.course_id,
        completed_at=from_timestamp(completion.completed_at),
        result=PROTO_TO_RESULT[completion.result],
        score=completion.score if which == "score" else None,
        grade=completion.grade if which == "grade" else None,
        evidence_url=completion.evidence_url,
    )


def revocation_from_proto(
    request: issuer_gateway_pb2.RevokeCompletionRequest,
    *,
    issuer_id: str,
    learner_id: str,
    now: datetime,
) -> RevocationRequested:
    """The domain request of an issuer's RevokeCompletion call, for the completion's
    ``learner_id`` (the ledger's, or the request's when the ledger has none)."""
    return RevocationRequested(
        Envelope(
            revocation_event_id(issuer_id, request.completion_id),
            CURRENT_SCHEMA_VERSION,
            now,
            issuer_id,
            learner_id,
        ),
        request.completion_id,
        request.reason,
    )


def completion_event_to_proto(request: LedgerRequest) -> events_pb2.CompletionEvent:
    """A request as a ``CompletionEvent``, always in the current schema version."""
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
    return event


def completion_event_from_proto(event: events_pb2.CompletionEvent) -> LedgerRequest:
    """The domain request of a ``CompletionEvent`` of the current schema version."""
    if not event.HasField("envelope"):
        raise InvalidMessage("missing_envelope", "CompletionEvent has no envelope")
    env = event.envelope
    try:
        event_id = uuid.UUID(env.event_id)
    except ValueError as exc:
        raise InvalidMessage(
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
                raise InvalidMessage("invalid_field", "completion.result is unspecified")
            if c.learner_id != env.learner_id:
                raise InvalidMessage("invalid_field", "completion.learner_id differs from envelope")
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
                raise InvalidMessage(
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
            raise InvalidMessage("missing_event", "CompletionEvent carries no event")


def ledger_entry_to_proto(entry: Entry) -> events_pb2.LedgerEntry:
    """The entry, its hashes and the exact bytes hashed, with the payload as typed fields."""
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
    return message


def ledger_entry_from_proto(message: events_pb2.LedgerEntry) -> Entry:
    """The domain entry of a ``LedgerEntry``.

    The payload is taken from ``canonical_json`` (the bytes that were hashed), so what a reader
    folds is exactly what the chain vouches for.
    """
    try:
        document = json.loads(message.canonical_json)
    except ValueError as exc:
        raise InvalidMessage("invalid_ledger_entry", str(exc)) from exc
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


def _basis(value: int, field: str) -> ConsentBasis | None:
    """Unspecified (events written before the basis was recorded): None."""
    if value == common_pb2.CONSENT_BASIS_UNSPECIFIED:
        return None
    try:
        return PROTO_TO_BASIS[value]  # type: ignore[index]
    except KeyError as exc:
        raise InvalidMessage("invalid_field", f"{field} {value} is not a known basis") from exc


def _instant(stamp: Timestamp, field: str) -> datetime:
    if stamp.seconds == 0 and stamp.nanos == 0:
        raise InvalidMessage("invalid_field", f"{field} is not set")
    try:
        return from_timestamp(stamp)
    except InstantOutOfRange as exc:
        raise InvalidMessage("invalid_field", f"{field} {exc.description}") from exc
