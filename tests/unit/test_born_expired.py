"""Credit older than the validity period when decided is expired from the start."""

from __future__ import annotations

from datetime import UTC, datetime

from learnerledger.domain.credit_rules import Append, CreditRules, Facts, decide, is_expired
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.instants import parse_instant
from learnerledger.domain.transcript import CredentialStatus, TranscriptProjection, view_at
from tests.support.domain import NOW, completion, course, log

RULES = CreditRules()


def test_a_completion_older_than_the_validity_is_credited_expired_and_the_transcript_agrees() -> (
    None
):
    old = datetime(2018, 6, 1, tzinfo=UTC)  # more than 7 years before NOW
    decision = decide(completion(completed_at=old), Facts(course=course()), rules=RULES, now=NOW)
    assert isinstance(decision, Append)
    payload = decision.draft.payload
    assert decision.draft.kind is EntryKind.CREDIT_AWARDED
    assert payload["born_expired"] is True
    valid_until = parse_instant(str(payload["valid_until"]))
    assert valid_until == datetime(2025, 6, 1, tzinfo=UTC)
    assert is_expired(valid_until, NOW)
    state = TranscriptProjection.fold(
        decision.draft.learner_id, log((completion(completed_at=old), Facts(course=course())))
    )
    ((_, status),) = view_at(state, NOW).credentials
    assert status is CredentialStatus.EXPIRED


def test_a_recent_completion_is_not_born_expired() -> None:
    decision = decide(completion(), Facts(course=course()), rules=RULES, now=NOW)
    assert isinstance(decision, Append)
    assert "born_expired" not in decision.draft.payload
