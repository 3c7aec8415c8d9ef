"""Event versions: a stored version-1 event is still understood by the version-2 reader.

``tests/fixtures/completion_event_v1.bin`` holds the exact bytes the version-1 encoder wrote
(the codec at the commit before schema version 2) for one completion; they must never change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from learnerledger.domain.credit_rules import completion_digest
from learnerledger.domain.events import (
    CURRENT_SCHEMA_VERSION,
    CompletionSubmitted,
    ConsentAction,
    Envelope,
    Result,
    completion_event_id,
    consent_event_id,
)
from learnerledger.kafka.codec import (
    UPCASTERS,
    UndecodableEvent,
    decode_completion_event,
    encode_completion_event,
    upcast,
)
from learnerledger.v1 import events_pb2

V1_BYTES = (Path(__file__).parent.parent / "fixtures" / "completion_event_v1.bin").read_bytes()
EVIDENCE = "https://swayam.example/certificates/c-v1-001"


def _expected() -> CompletionSubmitted:
    return CompletionSubmitted(
        envelope=Envelope(
            completion_event_id("swayam", "c-v1-001"),
            2,  # the reader's version, after upcasting
            datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
            "swayam",
            "123456789012",
        ),
        completion_id="c-v1-001",
        course_id="ml-101",
        completed_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        result=Result.PASS,
        score=87.5,
        evidence_url=EVIDENCE,
    )


def test_the_fixture_really_is_a_version_1_event() -> None:
    raw = events_pb2.CompletionEvent.FromString(V1_BYTES)
    assert raw.envelope.schema_version == 1
    assert raw.completion_submitted.completion.evidence_url == EVIDENCE
    assert list(raw.completion_submitted.evidence_urls) == []


def test_a_stored_version_1_event_decodes_to_the_same_request_as_its_version_2_form() -> None:
    assert CURRENT_SCHEMA_VERSION == 2
    assert sorted(UPCASTERS) == list(range(1, CURRENT_SCHEMA_VERSION))
    from_v1 = decode_completion_event(V1_BYTES)
    assert from_v1 == _expected()
    # Same request, so the same digest: a re-drive or replay of the old bytes after the upgrade
    # is recognised as the same completion (already recorded), never as a conflict.
    assert isinstance(from_v1, CompletionSubmitted)
    assert completion_digest(from_v1) == completion_digest(_expected())

    v2_bytes = encode_completion_event(from_v1)
    raw = events_pb2.CompletionEvent.FromString(v2_bytes)
    assert raw.envelope.schema_version == 2
    assert raw.completion_submitted.completion.evidence_url == ""
    assert list(raw.completion_submitted.evidence_urls) == [EVIDENCE]
    assert decode_completion_event(v2_bytes) == from_v1


def test_the_upcaster_moves_the_evidence_url_into_the_list() -> None:
    event = events_pb2.CompletionEvent.FromString(V1_BYTES)
    upcast(event)
    assert event.envelope.schema_version == 2
    assert event.completion_submitted.completion.evidence_url == ""
    assert list(event.completion_submitted.evidence_urls) == [EVIDENCE]


def test_a_version_2_event_with_several_urls_records_the_first() -> None:
    event = events_pb2.CompletionEvent.FromString(V1_BYTES)
    upcast(event)
    event.completion_submitted.evidence_urls.append("https://swayam.example/transcripts/x")
    decoded = decode_completion_event(event.SerializeToString())
    assert isinstance(decoded, CompletionSubmitted)
    assert decoded.evidence_url == EVIDENCE


def test_a_version_newer_than_the_reader_is_refused() -> None:
    event = events_pb2.CompletionEvent.FromString(V1_BYTES)
    event.envelope.schema_version = CURRENT_SCHEMA_VERSION + 1
    with pytest.raises(UndecodableEvent) as caught:
        decode_completion_event(event.SerializeToString())
    assert caught.value.reason == "unsupported_schema_version"


def test_consent_event_ids_differ_by_learner_university_and_action() -> None:
    grant = consent_event_id("123456789012", "du", ConsentAction.GRANT, "r-1")
    assert grant == consent_event_id("123456789012", "du", ConsentAction.GRANT, "r-1")
    assert grant != consent_event_id("123456789012", "du", ConsentAction.REVOKE, "r-1")
    assert grant != consent_event_id("123456789013", "du", ConsentAction.GRANT, "r-1")
    assert grant != consent_event_id("123456789012", "iitb", ConsentAction.GRANT, "r-1")
