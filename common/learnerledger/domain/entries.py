"""Credit entries: what the ledger appends. Never changed, never deleted."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

#: The JSON values an entry payload may hold (it is hashed as RFC 8785 canonical JSON).
JsonValue = str | int | float | bool | None | list["JsonValue"] | Mapping[str, "JsonValue"]
Payload = Mapping[str, JsonValue]


class EntryKind(enum.StrEnum):
    CREDIT_AWARDED = "credit_awarded"
    RECORDED_WITHOUT_CREDIT = "recorded_without_credit"
    CREDIT_REVOKED = "credit_revoked"
    CONSENT_GRANTED = "consent_granted"
    CONSENT_REVOKED = "consent_revoked"
    #: A university redeemed some of the learner's credits toward a programme (an irrevocable
    #: debit; the payload lists every credential asked for with its outcome).
    CREDITS_REDEEMED = "credits_redeemed"
    #: A redemption request was decided and nothing was redeemed (every outcome a refusal).
    REDEMPTION_REFUSED = "redemption_refused"


@dataclass(frozen=True, slots=True)
class EntryDraft:
    """An outcome the rules decided, before it has a place in the learner's chain."""

    learner_id: str
    kind: EntryKind
    payload: Payload
    rules_version: int
    source_event_id: uuid.UUID
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry as appended: its place in the learner's chain and its hashes.

    ``canonical_json`` is the exact byte string that was hashed;
    ``entry_hash = SHA-256(prev_hash || canonical_json)``.
    ``position`` is the global position the log gave it (None before it is stored).
    """

    learner_id: str
    sequence: int
    kind: EntryKind
    payload: Payload
    rules_version: int
    source_event_id: uuid.UUID
    recorded_at: datetime
    prev_hash: bytes
    entry_hash: bytes
    canonical_json: bytes
    position: int | None = None
    source_partition: int | None = None
    source_offset: int | None = None

    @property
    def issuer_id(self) -> str | None:
        value = self.payload.get("issuer_id")
        return value if isinstance(value, str) else None

    @property
    def completion_id(self) -> str | None:
        value = self.payload.get("completion_id")
        return value if isinstance(value, str) else None
