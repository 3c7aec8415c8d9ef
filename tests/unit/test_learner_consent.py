"""Consent with a basis, a purpose and an expiry: the decision's payload, the wire
format, event ids and the access log's page tokens. No I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from learnerledger.domain.credit_rules import Append, CreditRules, Facts, decide
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.events import (
    ConsentAction,
    ConsentBasis,
    ConsentGrantRequested,
    ConsentRevokeRequested,
    Envelope,
    consent_event_id,
)
from learnerledger.domain.validation import validate_request
from learnerledger.kafka.codec import decode_completion_event, encode_completion_event
from learnerledger.query import access_log
from learnerledger.v1 import events_pb2
from tests.support.domain import LEARNER, NOW

UNTIL = NOW + timedelta(days=90)


def _envelope() -> Envelope:
    return Envelope(uuid.uuid4(), 2, NOW, "", LEARNER)


def _payload(request: ConsentGrantRequested | ConsentRevokeRequested) -> dict[str, object]:
    facts = Facts(university_known=True, consent_active=True)
    decision = decide(request, facts, rules=CreditRules(), now=NOW)
    assert isinstance(decision, Append)
    expected = (
        EntryKind.CONSENT_GRANTED
        if isinstance(request, ConsentGrantRequested)
        else EntryKind.CONSENT_REVOKED
    )
    assert decision.draft.kind is expected
    return dict(decision.draft.payload)


def test_a_learners_grant_records_basis_purpose_and_expiry() -> None:
    grant = ConsentGrantRequested(
        _envelope(), "du", purpose="admission 2027", expire_time=UNTIL, basis=ConsentBasis.LEARNER
    )
    assert _payload(grant) == {
        "university_id": "du",
        "basis": "learner",
        "purpose": "admission 2027",
        "expire_time": "2027-02-20T10:00:00.000000Z",
    }
    revoke = ConsentRevokeRequested(_envelope(), "du", basis=ConsentBasis.LEARNER)
    assert _payload(revoke) == {"university_id": "du", "basis": "learner"}


def test_a_mandate_is_recorded_as_such_and_old_events_decide_as_before() -> None:
    mandate = ConsentGrantRequested(_envelope(), "du", basis=ConsentBasis.MANDATE)
    assert _payload(mandate) == {"university_id": "du", "basis": "mandate"}
    legacy = ConsentGrantRequested(_envelope(), "du")  # written before basis existed
    assert _payload(legacy) == {"university_id": "du"}


def test_consent_events_round_trip_and_old_bytes_decode_without_terms() -> None:
    grant = ConsentGrantRequested(
        _envelope(), "du", purpose="hiring", expire_time=UNTIL, basis=ConsentBasis.LEARNER
    )
    assert decode_completion_event(encode_completion_event(grant)) == grant
    revoke = ConsentRevokeRequested(_envelope(), "du", basis=ConsentBasis.MANDATE)
    assert decode_completion_event(encode_completion_event(revoke)) == revoke
    # bytes of a consent event as written before this change: university only
    old = events_pb2.CompletionEvent.FromString(
        encode_completion_event(ConsentGrantRequested(_envelope(), "du"))
    )
    assert not old.consent_grant_requested.HasField("expire_time")
    decoded = decode_completion_event(old.SerializeToString())
    assert isinstance(decoded, ConsentGrantRequested)
    assert (decoded.purpose, decoded.expire_time, decoded.basis) == ("", None, None)


def test_a_purpose_is_validated_at_the_kafka_boundary() -> None:
    too_long = ConsentGrantRequested(_envelope(), "du", purpose="x" * 501)
    nul = ConsentGrantRequested(_envelope(), "du", purpose="a\x00b")
    assert [v.field for v in validate_request(too_long, now=NOW)] == ["purpose"]
    assert [v.field for v in validate_request(nul, now=NOW)] == ["purpose"]
    assert validate_request(ConsentGrantRequested(_envelope(), "du", purpose="ok"), now=NOW) == []


def test_terms_are_part_of_a_requests_event_id() -> None:
    plain = consent_event_id(LEARNER, "du", ConsentAction.GRANT, "r-1")
    assert plain == consent_event_id(LEARNER, "du", ConsentAction.GRANT, "r-1", "")
    other_terms = consent_event_id(LEARNER, "du", ConsentAction.GRANT, "r-1", "learner\x1fhiring")
    assert other_terms != plain


def test_access_log_page_tokens_are_bound_to_the_learner() -> None:
    row = access_log.RecordAccess(
        41, LEARNER, "university", "du", "GetTranscript", datetime(2026, 5, 1, 1, 2, 3, 4, UTC)
    )
    token = access_log.encode_page_token(row)
    assert access_log.decode_page_token(token, LEARNER) == (row.accessed_at, 41)
    assert access_log.decode_page_token("", LEARNER) is None
    with pytest.raises(access_log.InvalidAccessPageToken, match="another learner_id"):
        access_log.decode_page_token(token, "999999999999")
    for bad in ("%%%", "e30", token[:-3]):
        with pytest.raises(access_log.InvalidAccessPageToken):
            access_log.decode_page_token(bad, LEARNER)
