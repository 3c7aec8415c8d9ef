"""Transcripts, credentials and completions without credit -> ``TranscriptQueryService``
messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

from learnerledger.domain.catalog import CourseLabel
from learnerledger.domain.transcript import (
    CompletionWithoutCredit,
    Credential,
    CredentialStatus,
    TranscriptState,
    TranscriptView,
    view_at,
)
from learnerledger.v1 import common_pb2, events_pb2
from learnerledger.v1 import transcript_query_pb2 as pb
from learnerledger.wire.enums import (
    HOURS_BASIS_TO_PROTO,
    LEVEL_TO_PROTO,
    NO_CREDIT_TO_PROTO,
    RESULT_TO_PROTO,
)
from learnerledger.wire.instants import to_timestamp

#: Title and skills of courses, by course id, from the catalog (credential_to_proto).
Labels: TypeAlias = Mapping[str, CourseLabel]

STATUS_TO_PROTO = {
    CredentialStatus.ACTIVE: pb.CREDENTIAL_STATUS_ACTIVE,
    CredentialStatus.REVOKED: pb.CREDENTIAL_STATUS_REVOKED,
    CredentialStatus.EXPIRED: pb.CREDENTIAL_STATUS_EXPIRED,
    CredentialStatus.REDEEMED: pb.CREDENTIAL_STATUS_REDEEMED,
}

_RESULT_TO_PROTO = {result.value: proto for result, proto in RESULT_TO_PROTO.items()}


def credential_to_proto(
    credential: Credential, status: CredentialStatus, labels: Labels | None = None
) -> pb.Credential:
    label = (labels or {}).get(credential.course_id)
    message = pb.Credential(
        learner_id=credential.learner_id,
        sequence=credential.sequence,
        issuer_id=credential.issuer_id,
        completion_id=credential.completion_id,
        course_id=credential.course_id,
        level=LEVEL_TO_PROTO.get(credential.level, common_pb2.NCRF_LEVEL_UNSPECIFIED),
        credits=float(credential.credits),
        completed_at=to_timestamp(credential.completed_at),
        valid_until=to_timestamp(credential.valid_until),
        status=STATUS_TO_PROTO[status],
        revoked_by_sequence=credential.revoked_by_sequence or 0,
        recorded_at=to_timestamp(credential.recorded_at),
        course_title="" if label is None else label.title,
        skills=[] if label is None else list(label.skills),
        notional_hours=credential.notional_hours or 0,
        hours_basis=HOURS_BASIS_TO_PROTO.get(
            credential.hours_basis or "", common_pb2.HOURS_BASIS_UNSPECIFIED
        ),
        grade=credential.grade or "",
        evidence_url=credential.evidence_url or "",
    )
    if credential.score is not None:
        message.score = credential.score
    if credential.revoked_at is not None:
        message.revoked_at.CopyFrom(to_timestamp(credential.revoked_at))
    if status is CredentialStatus.REDEEMED and credential.redeemed_at is not None:
        message.redemption.CopyFrom(
            pb.CredentialRedemption(
                university_id=credential.redeemed_university_id or "",
                programme_id=credential.redeemed_programme_id or "",
                redemption_id=credential.redemption_id or "",
                redeemed_by_sequence=credential.redeemed_by_sequence or 0,
                redeem_time=to_timestamp(credential.redeemed_at),
                # The transcript's statuses are evaluated at as_of; a revocation it shows was
                # recorded by then (read_at clears later ones; the read model is "now").
                revoked_after_redemption=credential.revoked_at is not None
                and credential.revoked_at >= credential.redeemed_at,
            )
        )
    return message


def uncredited_to_proto(
    completion: CompletionWithoutCredit, labels: Labels | None = None
) -> pb.UncreditedCompletion:
    label = (labels or {}).get(completion.course_id)
    return pb.UncreditedCompletion(
        sequence=completion.sequence,
        issuer_id=completion.issuer_id,
        completion_id=completion.completion_id,
        course_id=completion.course_id,
        course_title="" if label is None else label.title,
        completed_at=to_timestamp(completion.completed_at),
        recorded_at=to_timestamp(completion.recorded_at),
        result=_RESULT_TO_PROTO.get(completion.result, common_pb2.COMPLETION_RESULT_UNSPECIFIED),
        no_credit_reason=NO_CREDIT_TO_PROTO.get(
            completion.no_credit_reason, events_pb2.NO_CREDIT_REASON_UNSPECIFIED
        ),
    )


def _level_key(level: str) -> Decimal:
    return Decimal(level)


def transcript_to_proto(
    view: TranscriptView,
    completions_without_credit: int,
    known_at: datetime | None = None,
    *,
    uncredited: Iterable[CompletionWithoutCredit] = (),
    labels: Labels | None = None,
) -> pb.Transcript:
    """``known_at``: the ledger knowledge the view reflects (None: as of its instant)."""
    return pb.Transcript(
        learner_id=view.learner_id,
        total_credits=float(view.total_credits),
        active_credits=float(view.active_credits),
        revoked_credits=float(view.revoked_credits),
        expired_credits=float(view.expired_credits),
        by_level=[
            pb.LevelCredits(
                level=LEVEL_TO_PROTO.get(level, common_pb2.NCRF_LEVEL_UNSPECIFIED),
                credits=float(credits),
            )
            for level, credits in sorted(
                view.active_by_level.items(), key=lambda i: _level_key(i[0])
            )
        ],
        by_issuer=[
            pb.IssuerCredits(issuer_id=issuer, credits=float(credits))
            for issuer, credits in sorted(view.active_by_issuer.items())
        ],
        credentials=[credential_to_proto(c, s, labels) for c, s in view.credentials],
        uncredited_completions=[
            uncredited_to_proto(c, labels) for c in sorted(uncredited, key=lambda c: c.sequence)
        ],
        last_sequence=view.last_sequence,
        ledger_position=view.ledger_position,
        as_of=to_timestamp(view.as_of),
        known_at=to_timestamp(view.as_of if known_at is None else known_at),
        completions_without_credit=completions_without_credit,
        redeemed_credits=float(view.redeemed_credits),
        redeemed_by_programme=[
            pb.ProgrammeCredits(university_id=university, programme_id=programme, credits=float(c))
            for (university, programme), c in sorted(view.redeemed_by_programme.items())
        ],
    )


def state_to_transcript(
    state: TranscriptState,
    instant: datetime,
    known_at: datetime | None = None,
    labels: Labels | None = None,
) -> pb.Transcript:
    """The transcript of ``state`` at ``instant`` (the fold's view), as the API answers it."""
    return transcript_to_proto(
        view_at(state, instant),
        state.completions_without_credit,
        known_at,
        uncredited=state.without_credit.values(),
        labels=labels,
    )
