"""Kafka record values: the framing of ``learnerledger.v1`` messages on the topics.

The mapping between messages and the domain is :mod:`learnerledger.wire`; this module turns
record bytes into messages and back, upcasts events written in older schema versions, and frames
dead letters. Decoding is strict: bytes that are not a valid event raise
:class:`UndecodableEvent` with a machine-readable reason, and the ledger sends them to the
dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import DecodeError

from learnerledger.domain.entries import Entry
from learnerledger.domain.events import CURRENT_SCHEMA_VERSION, LedgerRequest
from learnerledger.v1 import events_pb2
from learnerledger.wire.events import (
    InvalidMessage,
    completion_event_from_proto,
    completion_event_to_proto,
    ledger_entry_from_proto,
    ledger_entry_to_proto,
)


class UndecodableEvent(Exception):
    """The bytes are not an event this reader understands."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# Upcasters: each turns an event of schema version N into version N + 1, in place. A reader of
# version CURRENT_SCHEMA_VERSION applies them in order to anything older it meets (a replay of
# old topics, a re-drive of old rejections). Version 1 is the first; add one entry per bump.
Upcaster = Callable[[events_pb2.CompletionEvent], None]


def _evidence_into_list(event: events_pb2.CompletionEvent) -> None:
    """Version 1 → 2: a completion's single ``evidence_url`` becomes ``evidence_urls[0]``."""
    if event.WhichOneof("event") != "completion_submitted":
        return
    submitted = event.completion_submitted
    if submitted.completion.evidence_url and not submitted.evidence_urls:
        submitted.evidence_urls.append(submitted.completion.evidence_url)
    submitted.completion.evidence_url = ""


UPCASTERS: dict[int, Upcaster] = {1: _evidence_into_list}


def upcast(event: events_pb2.CompletionEvent, *, target: int = CURRENT_SCHEMA_VERSION) -> None:
    version = event.envelope.schema_version
    if version < 1 or version > target:
        raise UndecodableEvent(
            "unsupported_schema_version",
            f"schema_version {version} (this reader understands 1..{target})",
        )
    while version < target:
        UPCASTERS[version](event)
        version += 1
        event.envelope.schema_version = version


def decode_completion_event(value: bytes | None) -> LedgerRequest:
    """Decode a ``completions.v1`` record value into a domain request."""
    if not value:
        raise UndecodableEvent("empty_value", "the record has no value")
    event = events_pb2.CompletionEvent()
    try:
        event.ParseFromString(value)
    except DecodeError as exc:
        raise UndecodableEvent("not_protobuf", f"cannot parse CompletionEvent: {exc}") from exc
    if not event.HasField("envelope"):
        raise UndecodableEvent("missing_envelope", "CompletionEvent has no envelope")
    upcast(event)
    try:
        return completion_event_from_proto(event)
    except InvalidMessage as exc:
        raise UndecodableEvent(exc.reason, exc.detail) from exc


def encode_completion_event(request: LedgerRequest) -> bytes:
    """A ``completions.v1`` value, always in the current schema version."""
    return completion_event_to_proto(request).SerializeToString(deterministic=True)


def encode_ledger_entry(entry: Entry) -> bytes:
    """A ``ledger.entries.v1`` value: the entry, its hashes and the exact bytes hashed."""
    return ledger_entry_to_proto(entry).SerializeToString(deterministic=True)


def decode_ledger_entry(value: bytes) -> Entry:
    """Rebuild the domain entry from a ``ledger.entries.v1`` value (its payload from
    ``canonical_json``, the bytes that were hashed)."""
    message = events_pb2.LedgerEntry()
    try:
        message.ParseFromString(value)
    except (DecodeError, ValueError) as exc:
        raise UndecodableEvent("invalid_ledger_entry", str(exc)) from exc
    try:
        return ledger_entry_from_proto(message)
    except InvalidMessage as exc:
        raise UndecodableEvent(exc.reason, exc.detail) from exc


def encode_dead_letter(
    *,
    original_key: bytes | None,
    original_value: bytes | None,
    reason: str,
    detail: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
) -> bytes:
    return events_pb2.DeadLetter(
        original_key=original_key or b"",
        original_value=original_value or b"",
        reason=reason,
        detail=detail,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
    ).SerializeToString(deterministic=True)
