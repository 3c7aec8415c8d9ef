"""Events that arrive on ``completions.v1``: what issuers and learners asked for.

These are requests, not facts: the ledger decides each one with the credit rules and appends
the outcome (an entry) or records a rejection.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

#: Namespace for deterministic completion event ids (UUIDv5 of issuer id + completion id).
COMPLETION_EVENT_NAMESPACE = uuid.UUID("6f1d3c1e-5b7a-4c1e-9f5e-0c6a8e2b7d41")

#: The schema version this code writes; readers upcast older versions (see the kafka adapter).
#: 2: a completion's evidence moved to ``CompletionSubmitted.evidence_urls`` (a list).
CURRENT_SCHEMA_VERSION = 2


def completion_event_id(issuer_id: str, completion_id: str) -> uuid.UUID:
    """The event id of a completion: the same (issuer, completion) always maps to the same id,
    so a partner's retry cannot create a second credit."""
    return uuid.uuid5(COMPLETION_EVENT_NAMESPACE, f"completion\x1f{issuer_id}\x1f{completion_id}")


def revocation_event_id(issuer_id: str, completion_id: str) -> uuid.UUID:
    """Deterministic id of the revocation of one completion (revoking twice is one event)."""
    return uuid.uuid5(COMPLETION_EVENT_NAMESPACE, f"revocation\x1f{issuer_id}\x1f{completion_id}")


class ConsentAction(enum.StrEnum):
    GRANT = "grant"
    REVOKE = "revoke"


class ConsentBasis(enum.StrEnum):
    """On whose authority consent changed. Entries recorded before the basis was (all an
    admin's) carry none and read as a mandate."""

    LEARNER = "learner"
    MANDATE = "mandate"


def consent_event_id(
    learner_id: str,
    university_id: str,
    action: ConsentAction,
    request_id: str,
    detail: str = "",
) -> uuid.UUID:
    """The event id of a consent request: learner, university, action and the caller's request
    id, so that a grant and a revocation sent with the same request id stay two events.
    ``detail`` (the basis, purpose and expiry of a grant) is part of it when given, so the same
    request id with other terms is another event (and refused as a conflict)."""
    name = f"consent\x1f{action.value}\x1f{learner_id}\x1f{university_id}\x1f{request_id}"
    return uuid.uuid5(COMPLETION_EVENT_NAMESPACE, f"{name}\x1f{detail}" if detail else name)


def redecision_event_id(approval_id: uuid.UUID, learner_id: str) -> uuid.UUID:
    """Id of the request to re-decide one learner's completions after one approval."""
    return uuid.uuid5(COMPLETION_EVENT_NAMESPACE, f"redecision\x1f{approval_id}\x1f{learner_id}")


def redecided_entry_event_id(approval_id: uuid.UUID, original_event_id: uuid.UUID) -> uuid.UUID:
    """The source event id of the entry that credits one completion after one approval: the
    idempotency key (approval, original entry) that makes the credit land exactly once."""
    return uuid.uuid5(
        COMPLETION_EVENT_NAMESPACE, f"redecided\x1f{approval_id}\x1f{original_event_id}"
    )


def redemption_event_id(university_id: str, redemption_id: str) -> uuid.UUID:
    """The event id of a redemption request: one per (university, redemption id), so a
    university's retry is the same event and the ledger decides it once."""
    return uuid.uuid5(
        COMPLETION_EVENT_NAMESPACE, f"redemption\x1f{university_id}\x1f{redemption_id}"
    )


class Result(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every event carries besides its payload."""

    event_id: uuid.UUID
    schema_version: int
    occurred_at: datetime
    issuer_id: str
    learner_id: str


@dataclass(frozen=True, slots=True)
class CompletionSubmitted:
    """An issuer states that a learner finished one of its courses."""

    envelope: Envelope
    completion_id: str
    course_id: str
    completed_at: datetime
    result: Result
    score: float | None = None
    grade: str | None = None
    evidence_url: str = ""


@dataclass(frozen=True, slots=True)
class RevocationRequested:
    """An issuer withdraws a completion it issued earlier."""

    envelope: Envelope
    completion_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ConsentGrantRequested:
    """A learner (or an admin under a mandate) grants a university the right to read the
    learner's record, for ``purpose``, until revoked or until ``expire_time``."""

    envelope: Envelope
    university_id: str
    purpose: str = ""
    expire_time: datetime | None = None
    basis: ConsentBasis | None = None


@dataclass(frozen=True, slots=True)
class ConsentRevokeRequested:
    """A learner withdraws a university's right to read their record."""

    envelope: Envelope
    university_id: str
    basis: ConsentBasis | None = None


@dataclass(frozen=True, slots=True)
class CreditRedecisionRequested:
    """Re-decide the learner's completions of ``course_id`` recorded without credit, after the
    approval ``approval_id`` came into effect (the ledger's own request, see ARCHITECTURE.md)."""

    envelope: Envelope
    course_id: str
    approval_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class RedemptionRequested:
    """A university asks to redeem the learner's credits toward one of its programmes.

    ``credential_sequences`` names the learner's credit entries by sequence; empty together with
    ``all_eligible`` means every credential that is eligible when the ledger decides. With
    ``allow_partial`` false the request is all or nothing. ``request_digest`` fingerprints what
    the university asked (see :func:`learnerledger.domain.redemption.request_digest`).
    """

    envelope: Envelope
    redemption_id: str
    university_id: str
    programme_id: str
    credential_sequences: tuple[int, ...]
    all_eligible: bool
    allow_partial: bool
    request_digest: str


LedgerRequest = (
    CompletionSubmitted
    | RevocationRequested
    | ConsentGrantRequested
    | ConsentRevokeRequested
    | CreditRedecisionRequested
    | RedemptionRequested
)
