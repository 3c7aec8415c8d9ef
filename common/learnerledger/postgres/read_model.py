"""The read model in PostgreSQL: one transcript row per learner, one row per credential.

The rows hold exactly a :class:`TranscriptState` (the domain fold), so loading a learner's rows
and applying the next entries with ``TranscriptProjection.apply`` is the same fold as the one
over the whole log. Statuses are not stored: ``view_at`` evaluates expiry and revocation when a
transcript is read.

The query service's projector and reads and the rebuild (``learnerledger.replay``, run by
``ledgerctl replay projections`` and the ledger's StartReplay) all use this one module.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import asyncpg

from learnerledger.domain.entries import Entry
from learnerledger.domain.transcript import (
    CompletionWithoutCredit,
    Credential,
    CredentialStatus,
    TranscriptProjection,
    TranscriptState,
)
from learnerledger.postgres import Connection
from learnerledger.postgres.credit_log import learner_entries

_CREDENTIAL_COLUMNS = (
    "learner_id, sequence, issuer_id, completion_id, course_id, level, credits, completed_at, "
    "valid_until, recorded_at, revoked_by_sequence, revoked_at, redeemed_by_sequence, "
    "redeemed_at, redeemed_university_id, redeemed_programme_id, redemption_id, "
    "notional_hours, hours_basis, grade, score, evidence_url"
)


def _credential(row: asyncpg.Record) -> Credential:
    return Credential(
        learner_id=row["learner_id"],
        sequence=row["sequence"],
        issuer_id=row["issuer_id"],
        completion_id=row["completion_id"],
        course_id=row["course_id"],
        level=row["level"],
        credits=Decimal(row["credits"]),
        completed_at=row["completed_at"],
        valid_until=row["valid_until"],
        recorded_at=row["recorded_at"],
        revoked_by_sequence=row["revoked_by_sequence"],
        revoked_at=row["revoked_at"],
        redeemed_by_sequence=row["redeemed_by_sequence"],
        redeemed_at=row["redeemed_at"],
        redeemed_university_id=row["redeemed_university_id"],
        redeemed_programme_id=row["redeemed_programme_id"],
        redemption_id=row["redemption_id"],
        notional_hours=row["notional_hours"],
        hours_basis=row["hours_basis"],
        grade=row["grade"],
        score=row["score"],
        evidence_url=row["evidence_url"],
    )


def _without_credit(learner_id: str, raw: str) -> dict[int, CompletionWithoutCredit]:
    """The stored list, validated: a malformed row fails loudly (UnreadableReadModel)."""
    try:
        values = json.loads(raw)
        if not isinstance(values, list):
            raise ValueError("without_credit must be a JSON array")
        completions = [CompletionWithoutCredit.from_json(learner_id, v) for v in values]
    except ValueError as exc:
        raise UnreadableReadModel(f"learner {learner_id}: without_credit: {exc}") from exc
    return {c.sequence: c for c in completions}


class UnreadableReadModel(ValueError):
    """A read-model row is not what the projector writes."""


class GapNotFilled(Exception):
    """The credit log does not (yet) hold the entries before one that arrived."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    applied: int
    skipped: int
    filled: int
    learners: int


class CredentialFilter(Protocol):
    """What :func:`list_credentials` filters on (``query.paging.CredentialFilter``)."""

    @property
    def issuer_id(self) -> str | None: ...
    @property
    def course_id(self) -> str | None: ...
    @property
    def level(self) -> str | None: ...
    @property
    def status(self) -> CredentialStatus | None: ...


async def load_states(
    connection: Connection, learner_ids: Iterable[str], *, for_update: bool = False
) -> dict[str, TranscriptState]:
    """The stored fold of each learner that has one (learners without rows are left out)."""
    ids = sorted(set(learner_ids))
    if not ids:
        return {}
    lock = " ORDER BY learner_id FOR UPDATE" if for_update else ""
    heads = await connection.fetch(
        "SELECT learner_id, last_sequence, ledger_position, completions_without_credit, "
        "consents, without_credit::text AS without_credit FROM read_transcripts "
        f"WHERE learner_id = ANY($1::text[]){lock}",
        ids,
    )
    rows = await connection.fetch(
        f"SELECT {_CREDENTIAL_COLUMNS} FROM read_credentials "
        "WHERE learner_id = ANY($1::text[]) ORDER BY learner_id, sequence",
        ids,
    )
    credentials: dict[str, dict[int, Credential]] = {}
    for row in rows:
        credentials.setdefault(row["learner_id"], {})[row["sequence"]] = _credential(row)
    return {
        h["learner_id"]: TranscriptState(
            learner_id=h["learner_id"],
            last_sequence=h["last_sequence"],
            ledger_position=h["ledger_position"],
            credentials=credentials.get(h["learner_id"], {}),
            completions_without_credit=h["completions_without_credit"],
            consents=frozenset(h["consents"]),
            without_credit=_without_credit(h["learner_id"], h["without_credit"]),
        )
        for h in heads
    }


async def load_state(connection: Connection, learner_id: str) -> TranscriptState | None:
    return (await load_states(connection, [learner_id])).get(learner_id)


async def save_states(
    connection: Connection,
    states: Sequence[TranscriptState],
    before: dict[str, TranscriptState],
) -> int:
    """Upsert changed transcripts and the credentials that differ from ``before``.

    Call inside a transaction. Returns the number of credential rows written.
    """
    changed = [s for s in states if before.get(s.learner_id) != s]
    if not changed:
        return 0
    await connection.executemany(
        """INSERT INTO read_transcripts (learner_id, last_sequence, ledger_position,
                   completions_without_credit, total_credits, consents, without_credit,
                   updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, now())
           ON CONFLICT (learner_id) DO UPDATE SET
               last_sequence = EXCLUDED.last_sequence,
               ledger_position = EXCLUDED.ledger_position,
               completions_without_credit = EXCLUDED.completions_without_credit,
               total_credits = EXCLUDED.total_credits,
               consents = EXCLUDED.consents,
               without_credit = EXCLUDED.without_credit,
               updated_at = now()
           WHERE read_transcripts.last_sequence < EXCLUDED.last_sequence""",
        [
            (
                s.learner_id,
                s.last_sequence,
                s.ledger_position,
                s.completions_without_credit,
                sum((c.credits for c in s.credentials.values()), Decimal(0)),
                sorted(s.consents),
                json.dumps([c.to_json() for _, c in sorted(s.without_credit.items())]),
            )
            for s in changed
        ],
    )
    rows = []
    for state in changed:
        old = before.get(state.learner_id)
        old_credentials = old.credentials if old is not None else {}
        for sequence, credential in state.credentials.items():
            if old_credentials.get(sequence) != credential:
                rows.append(
                    (
                        credential.learner_id,
                        credential.sequence,
                        credential.issuer_id,
                        credential.completion_id,
                        credential.course_id,
                        credential.level,
                        credential.credits,
                        credential.completed_at,
                        credential.valid_until,
                        credential.recorded_at,
                        credential.revoked_by_sequence,
                        credential.revoked_at,
                        credential.redeemed_by_sequence,
                        credential.redeemed_at,
                        credential.redeemed_university_id,
                        credential.redeemed_programme_id,
                        credential.redemption_id,
                        credential.notional_hours,
                        credential.hours_basis,
                        credential.grade,
                        credential.score,
                        credential.evidence_url,
                    )
                )
    if rows:
        await connection.executemany(
            f"""INSERT INTO read_credentials ({_CREDENTIAL_COLUMNS})
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                        $16, $17, $18, $19, $20, $21, $22)
                ON CONFLICT (learner_id, sequence) DO UPDATE SET
                    revoked_by_sequence = EXCLUDED.revoked_by_sequence,
                    revoked_at = EXCLUDED.revoked_at,
                    redeemed_by_sequence = EXCLUDED.redeemed_by_sequence,
                    redeemed_at = EXCLUDED.redeemed_at,
                    redeemed_university_id = EXCLUDED.redeemed_university_id,
                    redeemed_programme_id = EXCLUDED.redeemed_programme_id,
                    redemption_id = EXCLUDED.redemption_id""",
            rows,
        )
    return len(rows)


async def apply_entries(connection: Connection, entries: Sequence[Entry]) -> BatchResult:
    """Apply ``entries`` (any order, any learners) to the read model. Call in a transaction."""
    by_learner: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_learner[entry.learner_id].append(entry)
    before = await load_states(connection, by_learner, for_update=True)
    after: list[TranscriptState] = []
    applied = skipped = filled = 0
    for learner_id, items in sorted(by_learner.items()):
        state = before.get(learner_id) or TranscriptProjection.initial(learner_id)
        for entry in sorted(items, key=lambda e: e.sequence):
            if entry.sequence <= state.last_sequence:
                skipped += 1
                continue
            if entry.sequence > state.last_sequence + 1:
                missing = await learner_entries(
                    connection,
                    learner_id,
                    after_sequence=state.last_sequence,
                    up_to_sequence=entry.sequence - 1,
                )
                if len(missing) != entry.sequence - 1 - state.last_sequence:
                    raise GapNotFilled(
                        # no learner id: the message is logged (SECURITY.md, "Logs")
                        f"entries {state.last_sequence + 1}.."
                        f"{entry.sequence - 1} are not in the credit log yet"
                    )
                for earlier in missing:
                    state = TranscriptProjection.apply(state, earlier)
                filled += len(missing)
            state = TranscriptProjection.apply(state, entry)
            applied += 1
        after.append(state)
    await save_states(connection, after, before)
    return BatchResult(applied, skipped, filled, len(by_learner))


async def applied_sequence(connection: Connection, learner_id: str) -> tuple[int, int]:
    """(last_sequence, ledger_position) the read model holds for a learner; (0, 0) if none."""
    row = await connection.fetchrow(
        "SELECT last_sequence, ledger_position FROM read_transcripts WHERE learner_id = $1",
        learner_id,
    )
    return (0, 0) if row is None else (row["last_sequence"], row["ledger_position"])


async def has_applied_position(connection: Connection, learner_id: str, min_position: int) -> bool:
    """True when every entry of the learner at a log position <= ``min_position`` is applied.

    Positions are global and the read model is kept per learner, so "has applied position P"
    means: no entry of this learner at or below P is beyond the learner's applied sequence.
    """
    return bool(
        await connection.fetchval(
            """SELECT NOT EXISTS (
                   SELECT 1 FROM credit_log
                    WHERE learner_id = $1 AND position <= $2
                      AND sequence > coalesce((SELECT last_sequence FROM read_transcripts
                                                WHERE learner_id = $1), 0))""",
            learner_id,
            min_position,
        )
    )


_NOT_REDEEMED = "(redeemed_at IS NULL OR redeemed_at > $3)"
_STATUS_SQL = {  # the same precedence as Credential.status_at
    CredentialStatus.REDEEMED: "redeemed_at IS NOT NULL AND redeemed_at <= $3",
    CredentialStatus.REVOKED: f"{_NOT_REDEEMED} AND revoked_at IS NOT NULL AND revoked_at <= $3",
    CredentialStatus.EXPIRED: f"{_NOT_REDEEMED} AND (revoked_at IS NULL OR revoked_at > $3) "
    "AND valid_until <= $3",
    CredentialStatus.ACTIVE: f"{_NOT_REDEEMED} AND (revoked_at IS NULL OR revoked_at > $3) "
    "AND valid_until > $3",
}


async def list_credentials(
    connection: Connection,
    learner_id: str,
    credential_filter: CredentialFilter,
    *,
    instant: datetime,
    after_sequence: int,
    limit: int,
) -> tuple[list[Credential], int]:
    """One page of a learner's credentials in sequence order, and how many match in total."""
    clauses = ["learner_id = $1"]
    args: list[object] = [learner_id, after_sequence, instant]
    for name in ("issuer_id", "course_id", "level"):
        value = getattr(credential_filter, name)
        if value is not None:
            args.append(value)
            clauses.append(f"{name} = ${len(args)}")
    if credential_filter.status is not None:
        clauses.append(_STATUS_SQL[credential_filter.status])
    where = " AND ".join(clauses)
    args.append(limit)
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        rows = await connection.fetch(
            f"SELECT {_CREDENTIAL_COLUMNS} FROM read_credentials "
            f"WHERE {where} AND sequence > $2 AND $3::timestamptz IS NOT NULL "
            f"ORDER BY sequence LIMIT ${len(args)}",
            *args,
        )
        total = await connection.fetchval(
            f"SELECT count(*) FROM read_credentials WHERE {where} "
            "AND $2::bigint IS NOT NULL AND $3::timestamptz IS NOT NULL",
            *args[:-1],
        )
    return [_credential(r) for r in rows], int(total)
