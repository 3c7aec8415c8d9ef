"""The tamper-evident chain: each learner's entries are linked by SHA-256.

Canonical bytes of an entry (reproducible by a third party): the RFC 8785 (JSON
Canonicalization Scheme) encoding of the object

    {"learner_id", "sequence", "kind", "rules_version", "source_event_id",
     "recorded_at", "payload"}

with ``recorded_at`` as RFC 3339 UTC with microseconds and ``source_event_id`` as a lowercase
UUID. ``entry_hash = SHA-256(prev_hash || canonical_bytes)``; the first entry of every learner
has ``prev_hash`` = 32 zero bytes. The global position and the Kafka partition/offset are
transport facts and are not hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from learnerledger.domain.canonical_json import canonical_json
from learnerledger.domain.entries import Entry, EntryDraft, Payload
from learnerledger.domain.instants import format_instant

GENESIS_HASH = bytes(32)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last entry of one learner's chain."""

    learner_id: str
    sequence: int
    entry_hash: bytes


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first entry of a chain that does not verify."""

    learner_id: str
    sequence: int
    reason: str
    expected_hash: bytes
    stored_hash: bytes


def canonical_bytes(
    *,
    learner_id: str,
    sequence: int,
    kind: str,
    rules_version: int,
    source_event_id: str,
    recorded_at: str,
    payload: Payload,
) -> bytes:
    """The RFC 8785 bytes that are hashed for one entry."""
    return canonical_json(
        {
            "learner_id": learner_id,
            "sequence": sequence,
            "kind": kind,
            "rules_version": rules_version,
            "source_event_id": source_event_id,
            "recorded_at": recorded_at,
            "payload": payload,
        }
    )


def link(prev_hash: bytes, canonical: bytes) -> bytes:
    """``SHA-256(prev_hash || canonical)``."""
    return hashlib.sha256(prev_hash + canonical).digest()


def append_to_chain(head: ChainHead | None, draft: EntryDraft) -> Entry:
    """Give ``draft`` the next place in its learner's chain."""
    if head is not None and head.learner_id != draft.learner_id:
        raise ValueError("a draft can only follow its own learner's chain head")
    sequence = 1 if head is None else head.sequence + 1
    prev_hash = GENESIS_HASH if head is None else head.entry_hash
    canonical = canonical_bytes(
        learner_id=draft.learner_id,
        sequence=sequence,
        kind=draft.kind.value,
        rules_version=draft.rules_version,
        source_event_id=str(draft.source_event_id),
        recorded_at=format_instant(draft.recorded_at),
        payload=draft.payload,
    )
    return Entry(
        learner_id=draft.learner_id,
        sequence=sequence,
        kind=draft.kind,
        payload=draft.payload,
        rules_version=draft.rules_version,
        source_event_id=draft.source_event_id,
        recorded_at=draft.recorded_at,
        prev_hash=prev_hash,
        entry_hash=link(prev_hash, canonical),
        canonical_json=canonical,
    )


def head_of(entry: Entry) -> ChainHead:
    return ChainHead(entry.learner_id, entry.sequence, entry.entry_hash)


def verify_chain(entries: Iterable[Entry]) -> ChainBreak | None:
    """Recompute one learner's chain from its stored fields, in sequence order.

    The canonical bytes are rebuilt from the entry's fields (not trusted from storage), so a
    changed payload, a changed hash, a gap or a reordering is found at its first entry.
    """
    result = extend_chain(None, entries)
    return result if isinstance(result, ChainBreak) else None


def extend_chain(head: ChainHead | None, entries: Iterable[Entry]) -> ChainHead | ChainBreak | None:
    """Recompute the entries that follow ``head`` (``None``: from the genesis) in one chain.

    Returns the new head recomputed from the entries' stored fields (``head`` itself when there
    are no entries; ``None`` when neither), or the first entry that does not continue the chain:
    a sequence that does not follow on, a ``prev_hash`` that does not name its predecessor, or an
    ``entry_hash`` that does not recompute. This is how a checkpoint is extended from the
    previous one by hashing only the entries added since.
    """
    prev_hash = GENESIS_HASH if head is None else head.entry_hash
    expected_sequence = 1 if head is None else head.sequence + 1
    last = head
    for entry in entries:
        if last is not None and entry.learner_id != last.learner_id:
            return ChainBreak(
                entry.learner_id,
                entry.sequence,
                f"entry of another learner than {last.learner_id} in the chain",
                prev_hash,
                entry.entry_hash,
            )
        if entry.sequence != expected_sequence:
            return ChainBreak(
                entry.learner_id,
                entry.sequence,
                f"sequence gap: expected {expected_sequence}",
                prev_hash,
                entry.entry_hash,
            )
        canonical = canonical_bytes(
            learner_id=entry.learner_id,
            sequence=entry.sequence,
            kind=entry.kind.value,
            rules_version=entry.rules_version,
            source_event_id=str(entry.source_event_id),
            recorded_at=format_instant(entry.recorded_at),
            payload=entry.payload,
        )
        if entry.prev_hash != prev_hash:
            return ChainBreak(
                entry.learner_id,
                entry.sequence,
                "prev_hash does not match the previous entry's hash",
                prev_hash,
                entry.prev_hash,
            )
        expected = link(prev_hash, canonical)
        if expected != entry.entry_hash:
            return ChainBreak(
                entry.learner_id,
                entry.sequence,
                "entry_hash does not match the entry's content",
                expected,
                entry.entry_hash,
            )
        prev_hash = entry.entry_hash
        expected_sequence += 1
        last = ChainHead(entry.learner_id, entry.sequence, entry.entry_hash)
    return last


def heads_root(heads: Sequence[ChainHead]) -> bytes:
    """The root hash over every learner's chain head, for signed checkpoints.

    SHA-256 over the lines ``learner_id SP sequence SP hex(entry_hash) LF``, sorted by learner id.
    """
    digest = hashlib.sha256()
    for head in sorted(heads, key=lambda h: h.learner_id):
        digest.update(f"{head.learner_id} {head.sequence} {head.entry_hash.hex()}\n".encode())
    return digest.digest()
