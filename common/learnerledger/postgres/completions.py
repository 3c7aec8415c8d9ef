"""What the ledger recorded of an issuer's completion: the issuer gateway's reads of
``credit_log`` and ``rejections`` (by the unique ``source_event_id``, or by the issuer's
``(issuer_id, completion_id)``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from learnerledger.domain.entries import EntryKind
from learnerledger.domain.instants import parse_instant
from learnerledger.postgres import Connection


@dataclass(frozen=True, slots=True)
class CompletionEntry:
    """An entry the ledger appended about the completion, with the payload fields a status
    shows."""

    position: int
    sequence: int
    kind: EntryKind
    learner_id: str
    recorded_at: datetime
    credits: Decimal | None
    """``credits`` of credit_awarded and credit_revoked; None for the other kinds."""
    no_credit_reason: str | None
    """Why a recorded_without_credit entry awards nothing; None for the other kinds."""
    valid_until: datetime | None
    """Until when a credit_awarded entry's credit counts; None for the other kinds."""


@dataclass(frozen=True, slots=True)
class CompletionRejection:
    """A request about the completion that the ledger rejected (``rejections``)."""

    reason: str
    detail: str
    learner_id: str | None
    rejected_at: datetime


@dataclass(frozen=True, slots=True)
class CompletionRecord:
    """Everything the ledger holds of one completion, each list in the order recorded."""

    entries: Sequence[CompletionEntry]
    rejections: Sequence[CompletionRejection]


async def recorded_digests(
    connection: Connection, event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    """The ``completion_digest`` the ledger recorded for each of ``event_ids`` it has an entry
    of (one indexed ``source_event_id = ANY(...)`` query); ids without an entry are absent."""
    rows = await connection.fetch(
        "SELECT source_event_id, payload->>'completion_digest' AS digest "
        "FROM credit_log WHERE source_event_id = ANY($1::uuid[])",
        list(event_ids),
    )
    return {row["source_event_id"]: row["digest"] for row in rows}


async def learner_of(connection: Connection, issuer_id: str, completion_id: str) -> str | None:
    """The learner of the first entry about the issuer's completion; None if there is none."""
    learner = await connection.fetchval(
        "SELECT learner_id FROM credit_log WHERE issuer_id = $1 "
        "AND completion_id = $2 ORDER BY position LIMIT 1",
        issuer_id,
        completion_id,
    )
    return None if learner is None else str(learner)


async def completion_record(
    connection: Connection, issuer_id: str, completion_id: str, event_id: uuid.UUID
) -> CompletionRecord:
    """The entries about the issuer's completion (in log order) and the rejections of its
    submission ``event_id`` (in the order rejected)."""
    entries = await connection.fetch(
        "SELECT position, sequence, kind, learner_id, recorded_at, "
        "payload->>'credits' AS credits, payload->>'no_credit_reason' AS why, "
        "payload->>'valid_until' AS valid_until "
        "FROM credit_log WHERE issuer_id = $1 AND completion_id = $2 "
        "ORDER BY position",
        issuer_id,
        completion_id,
    )
    rejections = await connection.fetch(
        "SELECT reason, detail, learner_id, rejected_at FROM rejections "
        "WHERE issuer_id = $1 AND completion_id = $2 AND source_event_id = $3 "
        "ORDER BY rejection_id",
        issuer_id,
        completion_id,
        event_id,
    )
    return CompletionRecord(
        entries=[
            CompletionEntry(
                position=row["position"],
                sequence=row["sequence"],
                kind=EntryKind(row["kind"]),
                learner_id=row["learner_id"],
                recorded_at=row["recorded_at"],
                credits=None if row["credits"] is None else Decimal(row["credits"]),
                no_credit_reason=row["why"],
                valid_until=None
                if row["valid_until"] is None
                else parse_instant(row["valid_until"]),
            )
            for row in entries
        ],
        rejections=[
            CompletionRejection(
                reason=row["reason"],
                detail=row["detail"],
                learner_id=row["learner_id"],
                rejected_at=row["rejected_at"],
            )
            for row in rejections
        ],
    )
