"""Redemptions as universities see them: each ``redemption_requests`` row with the
ledger's decision (the entry appended for its event id), or the rejection recorded for it, and
the credentials it redeemed that their issuer revoked afterwards."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from learnerledger.domain.entries import JsonValue
from learnerledger.postgres import Connection
from learnerledger.postgres.catalog import RedemptionClaim


class RedemptionState(enum.StrEnum):
    PENDING = "pending"
    REDEEMED = "redeemed"
    REFUSED = "refused"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class RedemptionRecord:
    claim: RedemptionClaim
    state: RedemptionState
    #: The decision entry (REDEEMED / REFUSED): its sequence, payload and time.
    entry_sequence: int | None
    payload: dict[str, JsonValue]
    decided_at: datetime | None
    rejection_reason: str | None
    #: Credentials this redemption redeemed that their issuer revoked afterwards.
    revoked_after_redemption: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RedemptionQuery:
    """Which redemptions to list; None: any. ``after``: the (requested_at, university_id,
    redemption_id) of the last one of the previous page."""

    university_id: str | None = None
    learner_id: str | None = None
    programme_id: str | None = None
    state: RedemptionState | None = None
    revoked_after_redemption: bool | None = None
    after: tuple[datetime, str, str] | None = None


_SELECT = """
WITH listed AS (
  SELECT r.university_id, r.redemption_id, r.learner_id, r.programme_id, r.request_digest,
         r.event_id, r.requested_at,
         d.sequence AS entry_sequence, d.payload, d.recorded_at AS decided_at,
         CASE d.kind WHEN 'credits_redeemed' THEN 'redeemed'
                     WHEN 'redemption_refused' THEN 'refused' END AS decided_state,
         (SELECT j.reason FROM rejections j WHERE j.source_event_id = r.event_id
           ORDER BY j.rejected_at DESC LIMIT 1) AS rejection_reason,
         ARRAY(SELECT c.credential_sequence FROM redeemed_credentials c
                WHERE c.learner_id = r.learner_id AND c.redemption_sequence = d.sequence
                  AND EXISTS (SELECT 1 FROM credit_log v
                               WHERE v.learner_id = c.learner_id AND v.kind = 'credit_revoked'
                                 AND (v.payload->>'revoked_sequence')::bigint
                                     = c.credential_sequence)
                ORDER BY 1) AS revoked_after
    FROM redemption_requests r
    LEFT JOIN credit_log d ON d.source_event_id = r.event_id AND d.learner_id = r.learner_id
   WHERE {where}
), stated AS (
  SELECT *, COALESCE(decided_state,
                     CASE WHEN rejection_reason IS NULL THEN 'pending' ELSE 'rejected' END)
              AS state
    FROM listed
)
SELECT * FROM stated
"""


def _record(row: asyncpg.Record) -> RedemptionRecord:
    payload: Any = json.loads(row["payload"]) if row["payload"] is not None else {}
    return RedemptionRecord(
        claim=RedemptionClaim(
            university_id=row["university_id"],
            redemption_id=row["redemption_id"],
            learner_id=row["learner_id"],
            programme_id=row["programme_id"],
            request_digest=row["request_digest"],
            event_id=row["event_id"],
            requested_at=row["requested_at"],
        ),
        state=RedemptionState(row["state"]),
        entry_sequence=row["entry_sequence"],
        payload=payload if isinstance(payload, dict) else {},
        decided_at=row["decided_at"],
        rejection_reason=row["rejection_reason"] if row["state"] == "rejected" else None,
        revoked_after_redemption=tuple(row["revoked_after"]),
    )


async def find_redemption(
    connection: Connection, university_id: str, redemption_id: str
) -> RedemptionRecord | None:
    row = await connection.fetchrow(
        _SELECT.format(where="r.university_id = $1 AND r.redemption_id = $2"),
        university_id,
        redemption_id,
    )
    return None if row is None else _record(row)


async def list_redemptions(
    connection: Connection, query: RedemptionQuery, *, limit: int
) -> Sequence[RedemptionRecord]:
    """The redemptions ``query`` selects, in request order (time, university, id)."""
    after = query.after
    sql = (
        _SELECT.format(
            where="($1::text IS NULL OR r.university_id = $1) "
            "AND ($2::text IS NULL OR r.learner_id = $2) "
            "AND ($3::text IS NULL OR r.programme_id = $3) "
            "AND ($4::timestamptz IS NULL "
            "     OR (r.requested_at, r.university_id, r.redemption_id) > ($4, $5, $6))"
        )
        + " WHERE ($7::text IS NULL OR state = $7) "
        "AND ($8::boolean IS NULL OR (cardinality(revoked_after) > 0) = $8) "
        "ORDER BY requested_at, university_id, redemption_id LIMIT $9"
    )
    rows = await connection.fetch(
        sql,
        query.university_id,
        query.learner_id,
        query.programme_id,
        after[0] if after else None,
        after[1] if after else None,
        after[2] if after else None,
        query.state.value if query.state else None,
        query.revoked_after_redemption,
        limit,
    )
    return [_record(r) for r in rows]
