"""Re-drive rejected requests from the ``rejections`` table back onto ``completions.v1``.

After the cause of a rejection is fixed (a course added or approved late, a university
registered), ``ledgerctl replay rejected`` sends the original key and value again, with a
``redriven_from`` header naming the topic/partition/offset of the rejected record. The ledger
decides them like any other request: its idempotency by ``source_event_id`` makes a request
that has meanwhile become an entry (or a second re-drive) a no-op.

A request that is rejected again is recorded again (a new row, at its new offset). Selection
therefore keeps one row per request: the newest rejection of each (event id, original bytes).
``plan`` decides each selected request with the *current* facts and the domain rules, without
appending anything: what ``--dry-run`` shows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from learnerledger.domain.credit_rules import (
    RULES,
    AlreadyRecorded,
    Append,
    Facts,
    Redecided,
    Rejected,
    RulesHistory,
    decide,
)
from learnerledger.domain.events import LedgerRequest
from learnerledger.kafka.codec import UndecodableEvent, decode_completion_event
from learnerledger.kafka.producer import DurableProducer
from learnerledger.ledger.appender import BatchFacts
from learnerledger.postgres import Connection

REDRIVEN_FROM_HEADER = "redriven_from"


@dataclass(frozen=True, slots=True)
class RejectionFilter:
    """Which rejections to re-drive; ``None`` means any."""

    reason: str | None = None
    issuer_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredRejection:
    rejection_id: int
    source_topic: str
    source_partition: int
    source_offset: int
    source_event_id: uuid.UUID | None
    issuer_id: str | None
    learner_id: str | None
    completion_id: str | None
    reason: str
    detail: str
    original_key: bytes | None
    original_value: bytes
    rejected_at: datetime

    @property
    def origin(self) -> str:
        return f"{self.source_topic}/{self.source_partition}/{self.source_offset}"


@dataclass(frozen=True, slots=True)
class PlannedRedrive:
    """A selected rejection and what the rules would decide for it now."""

    rejection: StoredRejection
    outcome: str  # an entry kind, "already_recorded", "redecided", "rejected:<reason>" or
    # "undecodable:<reason>"
    detail: str


async def select_rejections(
    connection: Connection, selection: RejectionFilter, *, limit: int | None = None
) -> list[StoredRejection]:
    """The newest rejection of each distinct request matching ``selection``, oldest first."""
    rows = await connection.fetch(
        """SELECT * FROM (
               SELECT DISTINCT ON (source_event_id, sha256(original_value)) *
                 FROM rejections
                WHERE ($1::text IS NULL OR reason = $1)
                  AND ($2::text IS NULL OR issuer_id = $2)
                  AND ($3::timestamptz IS NULL OR rejected_at >= $3)
                  AND ($4::timestamptz IS NULL OR rejected_at < $4)
                ORDER BY source_event_id, sha256(original_value), rejection_id DESC
           ) AS newest
           ORDER BY rejection_id
           LIMIT $5""",
        selection.reason,
        selection.issuer_id,
        selection.since,
        selection.until,
        limit,
    )
    return [
        StoredRejection(
            rejection_id=r["rejection_id"],
            source_topic=r["source_topic"],
            source_partition=r["source_partition"],
            source_offset=r["source_offset"],
            source_event_id=r["source_event_id"],
            issuer_id=r["issuer_id"],
            learner_id=r["learner_id"],
            completion_id=r["completion_id"],
            reason=r["reason"],
            detail=r["detail"],
            original_key=None if r["original_key"] is None else bytes(r["original_key"]),
            original_value=bytes(r["original_value"]),
            rejected_at=r["rejected_at"],
        )
        for r in rows
    ]


async def plan(
    connection: Connection,
    rejections: Sequence[StoredRejection],
    *,
    rules: RulesHistory = RULES,
    now: datetime | None = None,
) -> list[PlannedRedrive]:
    """Decide every rejection's request with today's facts (each on its own, nothing appended)."""
    now = now or datetime.now(UTC)
    decoded = decode_rejections(rejections)
    requests = [request for _, request in decoded if not isinstance(request, UndecodableEvent)]
    facts = await BatchFacts.load(connection, requests) if requests else None
    return plan_decoded(decoded, facts.for_request if facts else _no_facts, rules=rules, now=now)


def decode_rejections(
    rejections: Sequence[StoredRejection],
) -> list[tuple[StoredRejection, LedgerRequest | UndecodableEvent]]:
    """Each rejection with its original request decoded again (or why that fails), in order."""
    decoded: list[tuple[StoredRejection, LedgerRequest | UndecodableEvent]] = []
    for rejection in rejections:
        try:
            decoded.append((rejection, decode_completion_event(rejection.original_value)))
        except UndecodableEvent as exc:
            decoded.append((rejection, exc))
    return decoded


def plan_decoded(
    decoded: Sequence[tuple[StoredRejection, LedgerRequest | UndecodableEvent]],
    facts_for: Callable[[LedgerRequest], Facts],
    *,
    rules: RulesHistory = RULES,
    now: datetime,
) -> list[PlannedRedrive]:
    """What :func:`plan` shows (no I/O): each request decided on its own with ``facts_for`` it,
    in the order of ``decoded``; an undecodable one is planned as ``undecodable:<reason>``."""
    planned: list[PlannedRedrive] = []
    for rejection, request in decoded:
        if isinstance(request, UndecodableEvent):
            planned.append(
                PlannedRedrive(rejection, f"undecodable:{request.reason}", request.detail)
            )
            continue
        match decide(request, facts_for(request), rules=rules, now=now):
            case Append(draft=draft):
                detail = f"credits {draft.payload.get('credits', 0)}"
                planned.append(PlannedRedrive(rejection, draft.kind.value, detail))
            case AlreadyRecorded(sequence=sequence):
                planned.append(
                    PlannedRedrive(rejection, "already_recorded", f"sequence {sequence}")
                )
            case Rejected(reason=reason, detail=detail):
                planned.append(PlannedRedrive(rejection, f"rejected:{reason.value}", detail))
            case Redecided(drafts=drafts):
                kinds = ", ".join(d.kind.value for d in drafts) or "nothing"
                planned.append(PlannedRedrive(rejection, "redecided", f"appends {kinds}"))
    return planned


def _no_facts(request: LedgerRequest) -> Facts:
    """``facts_for`` when no request could be decoded (so none is decided)."""
    raise LookupError(f"no facts were loaded for event {request.envelope.event_id}")


async def redrive(
    producer: DurableProducer, topic: str, rejections: Sequence[StoredRejection]
) -> int:
    """Produce every rejection's original key and value to ``topic``; return how many.

    ``producer`` should be idempotent with ``acks="all"``: the count is of acknowledged sends.
    """
    sends = [
        await producer.send(
            topic,
            key=r.original_key,
            value=r.original_value,
            headers=[(REDRIVEN_FROM_HEADER, r.origin.encode())],
        )
        for r in rejections
    ]
    await asyncio.gather(*sends)
    return len(sends)
