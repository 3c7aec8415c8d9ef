"""The credit log in PostgreSQL: append entries, look up facts, follow the log without skipping.

Rows are only ever inserted. ``append_entries`` uses COPY (asyncpg's
``copy_records_to_table``), the fastest bulk path; uniqueness of ``source_event_id`` and of
``(learner_id, sequence)`` makes a replayed event or a forked chain fail the transaction
instead of landing twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from learnerledger.domain.catalog import CourseCategory
from learnerledger.domain.credit_rules import PriorEntry, UncreditedCompletion
from learnerledger.domain.entries import Entry, EntryKind
from learnerledger.domain.hash_chain import ChainHead
from learnerledger.domain.instants import parse_instant
from learnerledger.domain.redemption import HeldCredential
from learnerledger.postgres import Connection

_ENTRY_COLUMNS = (
    "position, learner_id, sequence, kind, payload, canonical_json, rules_version, "
    "source_event_id, source_partition, source_offset, prev_hash, entry_hash, recorded_at"
)


@dataclass(frozen=True, slots=True)
class LogCursor:
    """Where a follower of the log stands: (transaction id, position) of the last row read."""

    tx_id: int = 0
    position: int = 0


def entry_from_row(row: asyncpg.Record) -> Entry:
    return Entry(
        learner_id=row["learner_id"],
        sequence=row["sequence"],
        kind=EntryKind(row["kind"]),
        payload=json.loads(row["payload"]),
        rules_version=row["rules_version"],
        source_event_id=row["source_event_id"],
        recorded_at=row["recorded_at"],
        prev_hash=bytes(row["prev_hash"]),
        entry_hash=bytes(row["entry_hash"]),
        canonical_json=bytes(row["canonical_json"]),
        position=row["position"],
        source_partition=row["source_partition"],
        source_offset=row["source_offset"],
    )


async def load_heads(connection: Connection, learner_ids: Iterable[str]) -> dict[str, ChainHead]:
    rows = await connection.fetch(
        """SELECT DISTINCT ON (learner_id) learner_id, sequence, entry_hash
             FROM credit_log WHERE learner_id = ANY($1::text[])
            ORDER BY learner_id, sequence DESC""",
        list(set(learner_ids)),
    )
    return {
        r["learner_id"]: ChainHead(r["learner_id"], r["sequence"], bytes(r["entry_hash"]))
        for r in rows
    }


async def find_by_source_events(
    connection: Connection, event_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, PriorEntry]:
    rows = await connection.fetch(
        "SELECT source_event_id, sequence, kind, payload FROM credit_log "
        "WHERE source_event_id = ANY($1::uuid[])",
        list(set(event_ids)),
    )
    return {
        r["source_event_id"]: PriorEntry(
            r["sequence"], EntryKind(r["kind"]), json.loads(r["payload"])
        )
        for r in rows
    }


@dataclass(frozen=True, slots=True)
class CompletionRecord:
    """A learner's completion entry and whether it has been revoked."""

    entry: PriorEntry
    revoked: bool


async def find_completions(
    connection: Connection, keys: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], CompletionRecord]:
    """Completion entries by (learner_id, issuer_id, completion_id), with revocation state."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await connection.fetch(
        """SELECT learner_id, issuer_id, completion_id,
                  max(sequence) FILTER (WHERE kind IN ('credit_awarded','recorded_without_credit'))
                      AS sequence,
                  (array_agg(kind ORDER BY sequence DESC) FILTER
                      (WHERE kind IN ('credit_awarded','recorded_without_credit')))[1] AS kind,
                  (array_agg(payload ORDER BY sequence DESC) FILTER
                      (WHERE kind IN ('credit_awarded','recorded_without_credit')))[1] AS payload,
                  bool_or(kind = 'credit_revoked') AS revoked
             FROM credit_log
             JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(l, i, c)
               ON learner_id = k.l AND issuer_id = k.i AND completion_id = k.c
            GROUP BY learner_id, issuer_id, completion_id""",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    found = {}
    for r in rows:
        if r["sequence"] is None:
            continue
        prior = PriorEntry(r["sequence"], EntryKind(r["kind"]), json.loads(r["payload"]))
        found[(r["learner_id"], r["issuer_id"], r["completion_id"])] = CompletionRecord(
            prior, bool(r["revoked"])
        )
    return found


async def uncredited_completions(
    connection: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[UncreditedCompletion]]:
    """Per (learner_id, course_id): the completions recorded without credit because the course
    was not approved, whether each was revoked and whether a later entry already credited it."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await connection.fetch(
        """SELECT o.learner_id, o.payload->>'course_id' AS course_id, o.sequence,
                  o.source_event_id, o.payload, o.rules_version,
                  EXISTS (SELECT 1 FROM credit_log r
                           WHERE r.learner_id = o.learner_id AND r.kind = 'credit_revoked'
                             AND r.payload->>'revoked_sequence' = o.sequence::text) AS revoked,
                  EXISTS (SELECT 1 FROM credit_log a
                           WHERE a.learner_id = o.learner_id AND a.kind = 'credit_awarded'
                             AND a.payload->>'redecides_sequence' = o.sequence::text)
                      AS redecided
             FROM credit_log o
             JOIN unnest($1::text[], $2::text[]) AS k(l, c)
               ON o.learner_id = k.l AND o.payload->>'course_id' = k.c
            WHERE o.kind = 'recorded_without_credit'
              AND o.payload->>'no_credit_reason' = 'course_not_approved'
            ORDER BY o.learner_id, o.sequence""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    found: dict[tuple[str, str], list[UncreditedCompletion]] = {}
    for r in rows:
        found.setdefault((r["learner_id"], r["course_id"]), []).append(
            UncreditedCompletion(
                sequence=r["sequence"],
                source_event_id=r["source_event_id"],
                payload=json.loads(r["payload"]),
                revoked=r["revoked"],
                redecided=r["redecided"],
                rules_version=r["rules_version"],
            )
        )
    return found


async def credit_holders(
    connection: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Per (learner_id, credit group): the sequence of the learner's first unrevoked
    ``credit_awarded`` entry for a course of that group (the course or a version of it)."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await connection.fetch(
        """SELECT a.learner_id, coalesce(c.counts_as_course_id, c.course_id) AS credit_group,
                  min(a.sequence) AS sequence
             FROM credit_log a
             JOIN courses c ON c.course_id = a.payload->>'course_id'
             JOIN unnest($1::text[], $2::text[]) AS k(l, g)
               ON a.learner_id = k.l AND coalesce(c.counts_as_course_id, c.course_id) = k.g
            WHERE a.kind = 'credit_awarded'
              AND NOT EXISTS (SELECT 1 FROM credit_log r
                               WHERE r.learner_id = a.learner_id AND r.kind = 'credit_revoked'
                                 AND r.payload->>'revoked_sequence' = a.sequence::text)
            GROUP BY 1, 2""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["learner_id"], r["credit_group"]): r["sequence"] for r in rows}


async def learners_with_uncredited_completions(connection: Connection, course_id: str) -> list[str]:
    """Learners holding a completion of ``course_id`` recorded without credit because the
    course was not approved (the candidates of a re-decision after an approval)."""
    rows = await connection.fetch(
        "SELECT DISTINCT learner_id FROM credit_log "
        "WHERE kind = 'recorded_without_credit' AND payload->>'course_id' = $1 "
        "AND payload->>'no_credit_reason' = 'course_not_approved' ORDER BY learner_id",
        course_id,
    )
    return [r["learner_id"] for r in rows]


async def append_entries(
    connection: Connection,
    entries: Sequence[Entry],
) -> None:
    """Insert ``entries`` (already chained) in one COPY. Call inside a transaction."""
    if not entries:
        return
    await connection.copy_records_to_table(
        "credit_log",
        columns=[
            "learner_id",
            "sequence",
            "kind",
            "issuer_id",
            "completion_id",
            "payload",
            "canonical_json",
            "rules_version",
            "source_event_id",
            "source_partition",
            "source_offset",
            "prev_hash",
            "entry_hash",
            "recorded_at",
        ],
        records=[
            (
                e.learner_id,
                e.sequence,
                e.kind.value,
                e.issuer_id,
                e.completion_id,
                json.dumps(e.payload, separators=(",", ":")),
                e.canonical_json,
                e.rules_version,
                e.source_event_id,
                e.source_partition,
                e.source_offset,
                e.prev_hash,
                e.entry_hash,
                e.recorded_at,
            )
            for e in entries
        ],
    )


async def learner_entries(
    connection: Connection,
    learner_id: str,
    *,
    after_sequence: int = 0,
    up_to_sequence: int | None = None,
) -> list[Entry]:
    rows = await connection.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM credit_log WHERE learner_id = $1 AND sequence > $2 "
        "AND ($3::bigint IS NULL OR sequence <= $3) ORDER BY sequence",
        learner_id,
        after_sequence,
        up_to_sequence,
    )
    return [entry_from_row(r) for r in rows]


#: The follow query's condition and order: rows after the cursor, from transactions older than
#: the oldest still running (``read_committed_after`` says why).
_COMMITTED_AFTER = """
     WHERE (tx_id, position) > ($1::text::xid8, $2)
       AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY tx_id, position LIMIT $3"""


async def read_committed_after(
    connection: Connection, cursor: LogCursor, limit: int
) -> tuple[list[Entry], LogCursor]:
    """The next rows of the log in commit-safe order, and the cursor after them.

    Positions come from a sequence, so a transaction can take position 10, commit after the one
    that took 11, and a reader ordered by position alone would skip 10 forever. Here rows are
    read in (tx_id, position) order and only from transactions older than the oldest one still
    running (``pg_snapshot_xmin``): every such transaction has committed or aborted, so no row
    can appear later behind the cursor.
    """
    rows = await connection.fetch(
        f"SELECT tx_id::text::bigint AS tx, {_ENTRY_COLUMNS} FROM credit_log {_COMMITTED_AFTER}",
        str(cursor.tx_id),
        cursor.position,
        limit,
    )
    if not rows:
        return [], cursor
    last = rows[-1]
    return [entry_from_row(r) for r in rows], LogCursor(last["tx"], last["position"])


@dataclass(frozen=True, slots=True)
class LoggedHash:
    """An entry's position in the log and its ``entry_hash``: all the Merkle tree needs of it."""

    position: int
    entry_hash: bytes


async def hashes_committed_after(
    connection: Connection, cursor: LogCursor, limit: int
) -> tuple[list[LoggedHash], LogCursor]:
    """``read_committed_after``'s rows (the same rows, the same order), each only as its
    position and ``entry_hash``, and the cursor after them."""
    rows = await connection.fetch(
        "SELECT tx_id::text::bigint AS tx, position, entry_hash FROM credit_log" + _COMMITTED_AFTER,
        str(cursor.tx_id),
        cursor.position,
        limit,
    )
    if not rows:
        return [], cursor
    last = rows[-1]
    return [LoggedHash(r["position"], bytes(r["entry_hash"])) for r in rows], LogCursor(
        last["tx"], last["position"]
    )


async def entry_at(connection: Connection, learner_id: str, sequence: int) -> Entry | None:
    row = await connection.fetchrow(
        f"SELECT {_ENTRY_COLUMNS} FROM credit_log WHERE learner_id = $1 AND sequence = $2",
        learner_id,
        sequence,
    )
    return None if row is None else entry_from_row(row)


async def entry_with_hash(connection: Connection, entry_hash: bytes) -> Entry | None:
    """The entry whose ``entry_hash`` is given (index ``credit_log_by_entry_hash``)."""
    row = await connection.fetchrow(
        f"SELECT {_ENTRY_COLUMNS} FROM credit_log WHERE entry_hash = $1", entry_hash
    )
    return None if row is None else entry_from_row(row)


async def active_consents(
    connection: Connection, pairs: Iterable[tuple[str, str]], now: datetime | None = None
) -> set[tuple[str, str]]:
    """Which (learner_id, university_id) pairs have a consent that stands at ``now``."""
    return set(await consents_in_force(connection, pairs, now))


async def consents_in_force(
    connection: Connection, pairs: Iterable[tuple[str, str]], now: datetime | None = None
) -> dict[tuple[str, str], datetime | None]:
    """The (learner_id, university_id) pairs whose latest consent entry is a grant not past its
    ``expire_time`` at ``now`` (default: the current time), each with that expire_time (None:
    until revoked). Expiry is not an entry: a consent lapses on its own when it is read."""
    instant = now or datetime.now(UTC)
    pairs = list(set(pairs))
    if not pairs:
        return {}
    rows = await connection.fetch(
        """SELECT DISTINCT ON (learner_id, payload->>'university_id')
                  learner_id, payload->>'university_id' AS university_id, kind,
                  payload->>'expire_time' AS expire_time
             FROM credit_log
            WHERE kind IN ('consent_granted', 'consent_revoked')
              AND (learner_id, payload->>'university_id') IN
                  (SELECT * FROM unnest($1::text[], $2::text[]))
            ORDER BY learner_id, payload->>'university_id', sequence DESC""",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    standing: dict[tuple[str, str], datetime | None] = {}
    for r in rows:
        if r["kind"] != "consent_granted":
            continue
        expire_time = parse_instant(r["expire_time"]) if r["expire_time"] else None
        if expire_time is None or expire_time > instant:
            standing[(r["learner_id"], r["university_id"])] = expire_time
    return standing


# redemption -------------------------------------------------------------------


async def held_credentials(
    connection: Connection, learner_ids: Iterable[str]
) -> dict[str, dict[int, HeldCredential]]:
    """Every credit entry of each learner with its state now: category (from the catalog),
    revoked (a credit_revoked entry names it), redeemed (``redeemed_credentials``)."""
    rows = await connection.fetch(
        """SELECT l.learner_id, l.sequence, l.payload, c.category,
                  EXISTS (SELECT 1 FROM credit_log r
                           WHERE r.learner_id = l.learner_id AND r.kind = 'credit_revoked'
                             AND (r.payload->>'revoked_sequence')::bigint = l.sequence)
                      AS revoked,
                  EXISTS (SELECT 1 FROM redeemed_credentials d
                           WHERE d.learner_id = l.learner_id
                             AND d.credential_sequence = l.sequence) AS redeemed
             FROM credit_log l
             LEFT JOIN courses c ON c.course_id = l.payload->>'course_id'
            WHERE l.learner_id = ANY($1::text[]) AND l.kind = 'credit_awarded'
            ORDER BY l.learner_id, l.sequence""",
        list(set(learner_ids)),
    )
    held: dict[str, dict[int, HeldCredential]] = {}
    for r in rows:
        payload = json.loads(r["payload"])
        held.setdefault(r["learner_id"], {})[r["sequence"]] = HeldCredential(
            sequence=r["sequence"],
            course_id=str(payload["course_id"]),
            category=CourseCategory(r["category"] or CourseCategory.UNIVERSITY_COURSE.value),
            level=Decimal(str(payload["level"])),
            credits=Decimal(str(payload["credits"])),
            completed_at=parse_instant(str(payload["completed_at"])),
            valid_until=parse_instant(str(payload["valid_until"])),
            revoked=bool(r["revoked"]),
            redeemed=bool(r["redeemed"]),
        )
    return held


async def redeemed_toward(
    connection: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[CourseCategory, Decimal]]:
    """Per (learner_id, programme_id): the credits already redeemed toward it, by category."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await connection.fetch(
        """SELECT learner_id, programme_id, category, sum(credits) AS credits
             FROM redeemed_credentials
            WHERE (learner_id, programme_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
            GROUP BY learner_id, programme_id, category""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    totals: dict[tuple[str, str], dict[CourseCategory, Decimal]] = {}
    for r in rows:
        key = (r["learner_id"], r["programme_id"])
        totals.setdefault(key, {})[CourseCategory(r["category"])] = Decimal(r["credits"])
    return totals


async def record_redeemed_credentials(connection: Connection, entries: Sequence[Entry]) -> None:
    """One ``redeemed_credentials`` row per credential a ``credits_redeemed`` entry redeemed.
    Call in the transaction that appends the entries (after them: the rows reference them). A
    credential redeemed before violates the primary key and fails the transaction."""
    rows = []
    for entry in entries:
        if entry.kind is not EntryKind.CREDITS_REDEEMED:
            continue
        p = entry.payload
        lines = p.get("lines")
        for line in lines if isinstance(lines, list) else []:
            if not isinstance(line, Mapping) or line.get("outcome") != "redeemed":
                continue
            rows.append(
                (
                    entry.learner_id,
                    int(str(line["sequence"])),
                    entry.sequence,
                    str(p["university_id"]),
                    str(p["programme_id"]),
                    str(p["redemption_id"]),
                    str(line["category"]),
                    Decimal(str(line["credits"])),
                    entry.recorded_at,
                )
            )
    if rows:
        await connection.executemany(
            "INSERT INTO redeemed_credentials (learner_id, credential_sequence, "
            "redemption_sequence, university_id, programme_id, redemption_id, category, "
            "credits, redeemed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            rows,
        )
