"""A learner's consents as they stand: a fold over the learner's consent entries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from learnerledger.domain.entries import Entry, EntryKind
from learnerledger.domain.instants import parse_instant


@dataclass(frozen=True, slots=True)
class ConsentTerm:
    """One reader's consent that stands now: since when, for what, until when (None: until
    revoked), and on which basis (``learner``, ``mandate``; None for entries written before
    consent had a basis)."""

    university_id: str
    granted_at: datetime
    purpose: str
    expire_time: datetime | None
    basis: str | None


def standing_consents(entries: Iterable[Entry], now: datetime) -> list[ConsentTerm]:
    """The consents in force at ``now``, by reader id: the latest consent entry per reader is
    a grant whose expiry (if any) is after ``now`` (the rule of ``consents_in_force``)."""
    latest: dict[str, Entry] = {}
    for entry in sorted(entries, key=lambda e: e.sequence):
        if entry.kind in (EntryKind.CONSENT_GRANTED, EntryKind.CONSENT_REVOKED):
            reader = entry.payload.get("university_id")
            if isinstance(reader, str):
                latest[reader] = entry
    terms = []
    for reader, entry in sorted(latest.items()):
        if entry.kind is not EntryKind.CONSENT_GRANTED:
            continue
        raw_expiry = entry.payload.get("expire_time")
        expire_time = parse_instant(raw_expiry) if isinstance(raw_expiry, str) else None
        if expire_time is not None and expire_time <= now:
            continue
        purpose = entry.payload.get("purpose")
        basis = entry.payload.get("basis")
        terms.append(
            ConsentTerm(
                reader,
                entry.recorded_at,
                purpose if isinstance(purpose, str) else "",
                expire_time,
                basis if isinstance(basis, str) else None,
            )
        )
    return terms
