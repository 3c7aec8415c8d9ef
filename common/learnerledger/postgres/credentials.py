"""What exported credentials need from PostgreSQL: a credit's facts (log and catalog), its
status-list entry (allocated at random on first export, migration 0035), the revoked indices
of a status list (from the read model, at request time) and the issuer's signing keys."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from decimal import Decimal

import asyncpg

from learnerledger.domain.credentials import STATUS_LIST_SIZE, CreditFacts, StatusEntry
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.instants import parse_instant
from learnerledger.postgres import Connection
from learnerledger.postgres.credit_log import entry_at

#: A list takes new entries until this share of it is used, then the next list is opened
#: (random indices stay cheap to draw and the list stays large enough to hide in).
FILL_LIMIT = STATUS_LIST_SIZE // 2
MAX_DRAWS = 64


class CreditNotFound(Exception):
    """The learner has no entry at that sequence."""


class NotACredit(Exception):
    """The entry exists but awards no credit (a consent, a revocation, no credit)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"the entry is {kind}, not credit_awarded")
        self.kind = kind


class CreditRevoked(Exception):
    """The issuer revoked the credit: nothing to export."""

    def __init__(self, revoked_by_sequence: int) -> None:
        super().__init__(f"the credit was revoked by entry {revoked_by_sequence}")
        self.revoked_by_sequence = revoked_by_sequence


class UnreadableCredit(Exception):
    """The entry's payload lacks what a credential needs (a row to distrust, not to crash on)."""


def _text(payload: object, name: str) -> str:
    value = payload.get(name) if isinstance(payload, dict) else None
    if not isinstance(value, str) or not value:
        raise UnreadableCredit(f"payload field {name} is missing or not text")
    return value


def _optional_text(payload: Mapping[str, object], name: str) -> str | None:
    value = payload.get(name)
    return value if isinstance(value, str) and value != "" else None


async def revoked_by(connection: Connection, learner_id: str, sequence: int) -> int | None:
    """The sequence of the entry that revoked credit ``sequence``, if any (from the log)."""
    value = await connection.fetchval(
        """SELECT min(sequence) FROM credit_log
            WHERE learner_id = $1 AND kind = 'credit_revoked'
              AND payload->>'revoked_sequence' = $2::bigint::text""",
        learner_id,
        sequence,
    )
    return None if value is None else int(value)


async def credit_facts(connection: Connection, learner_id: str, sequence: int) -> CreditFacts:
    """The facts of credit ``(learner_id, sequence)``, from the log and the catalog."""
    entry = await entry_at(connection, learner_id, sequence)
    if entry is None:
        raise CreditNotFound(f"learner {learner_id} has no entry with sequence {sequence}")
    if entry.kind is not EntryKind.CREDIT_AWARDED:
        raise NotACredit(entry.kind.value)
    revoker = await revoked_by(connection, learner_id, sequence)
    if revoker is not None:
        raise CreditRevoked(revoker)
    payload = dict(entry.payload)
    course_id = _text(payload, "course_id")
    issuer_id = _text(payload, "issuer_id")
    row = await connection.fetchrow(
        """SELECT c.title, c.skills, i.display_name
             FROM courses c JOIN issuers i ON i.issuer_id = c.issuer_id
            WHERE c.course_id = $1""",
        course_id,
    )
    if row is None:
        raise UnreadableCredit(f"course {course_id} is not in the catalog")
    hours = payload.get("notional_hours")
    credits = payload.get("credits")
    if not isinstance(hours, int) or isinstance(hours, bool):
        raise UnreadableCredit("payload field notional_hours is not a whole number")
    if not isinstance(credits, int | float) or isinstance(credits, bool):
        raise UnreadableCredit("payload field credits is not a number")
    score = payload.get("score")
    try:
        return CreditFacts(
            learner_id=learner_id,
            sequence=sequence,
            issuer_id=issuer_id,
            issuer_name=row["display_name"],
            completion_id=_text(payload, "completion_id"),
            course_id=course_id,
            course_title=row["title"],
            level=_text(payload, "level"),
            notional_hours=hours,
            hours_basis=_text(payload, "hours_basis"),
            credits=Decimal(str(credits)),
            completed_at=parse_instant(_text(payload, "completed_at")),
            valid_until=parse_instant(_text(payload, "valid_until")),
            recorded_at=entry.recorded_at,
            result=_text(payload, "result"),
            entry_hash=entry.entry_hash,
            score=float(score)
            if isinstance(score, int | float) and not isinstance(score, bool)
            else None,
            grade=_optional_text(payload, "grade"),
            evidence_url=_optional_text(payload, "evidence_url"),
            skills=tuple(row["skills"] or ()),
        )
    except ValueError as exc:  # an instant that does not parse
        raise UnreadableCredit(str(exc)) from exc


async def credited_sequences(connection: Connection, learner_id: str) -> list[int]:
    """The learner's credit_awarded entries that no revocation cancelled, in order."""
    rows = await connection.fetch(
        """SELECT a.sequence FROM credit_log a
            WHERE a.learner_id = $1 AND a.kind = 'credit_awarded'
              AND NOT EXISTS (
                  SELECT 1 FROM credit_log r
                   WHERE r.learner_id = a.learner_id AND r.kind = 'credit_revoked'
                     AND r.payload->>'revoked_sequence' = a.sequence::text)
            ORDER BY a.sequence""",
        learner_id,
    )
    return [r["sequence"] for r in rows]


def _status(row: asyncpg.Record) -> StatusEntry:
    return StatusEntry(row["status_list"], row["status_index"], row["subject_salt"])


async def status_entry(connection: Connection, learner_id: str, sequence: int) -> StatusEntry:
    """The credit's status-list entry: the stored one, or a new one at a random free index of
    the list being filled (drawn with ``secrets``; a collision or a concurrent export of the
    same credit is resolved by the table's unique keys)."""
    select = (
        "SELECT status_list, status_index, subject_salt FROM credential_status_entries "
        "WHERE learner_id = $1 AND sequence = $2"
    )
    for _ in range(MAX_DRAWS):
        row = await connection.fetchrow(select, learner_id, sequence)
        if row is not None:
            return _status(row)
        current = await connection.fetchrow(
            """SELECT status_list, count(*) AS used FROM credential_status_entries
                GROUP BY status_list ORDER BY status_list DESC LIMIT 1"""
        )
        status_list = 1
        if current is not None:
            status_list = current["status_list"] + (1 if current["used"] >= FILL_LIMIT else 0)
        inserted = await connection.fetchrow(
            """INSERT INTO credential_status_entries
                   (learner_id, sequence, status_list, status_index, subject_salt)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT DO NOTHING
               RETURNING status_list, status_index, subject_salt""",
            learner_id,
            sequence,
            status_list,
            secrets.randbelow(STATUS_LIST_SIZE),
            secrets.token_hex(16),
        )
        if inserted is not None:
            return _status(inserted)
    raise RuntimeError(f"no free status-list index found in {MAX_DRAWS} draws")


async def revoked_indices(connection: Connection, status_list: int) -> list[int]:
    """Indices in ``status_list`` whose credit the read model shows revoked (now)."""
    rows = await connection.fetch(
        """SELECT s.status_index FROM credential_status_entries s
             JOIN read_credentials c USING (learner_id, sequence)
            WHERE s.status_list = $1 AND c.revoked_at IS NOT NULL""",
        status_list,
    )
    return [r["status_index"] for r in rows]


async def status_list_exists(connection: Connection, status_list: int) -> bool:
    """A list is served once it exists: list 1 always, later ones once they hold an entry."""
    if status_list == 1:
        return True
    return bool(
        await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM credential_status_entries WHERE status_list = $1)",
            status_list,
        )
    )


async def record_issuer_key(connection: Connection, key_id: str, public_key: bytes) -> None:
    """Remember a signing key (idempotent): the DID document lists every key ever used."""
    await connection.execute(
        """INSERT INTO credential_issuer_keys (key_id, public_key) VALUES ($1, $2)
           ON CONFLICT DO NOTHING""",
        key_id,
        public_key,
    )


async def issuer_keys(connection: Connection) -> Sequence[bytes]:
    rows = await connection.fetch(
        "SELECT public_key FROM credential_issuer_keys ORDER BY first_used_at, key_id"
    )
    return [bytes(r["public_key"]) for r in rows]
