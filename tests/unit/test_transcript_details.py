"""What a transcript shows of each completion: a credential's hours, basis, grade,
score and evidence; completions without credit listed, not only counted."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from learnerledger.domain.catalog import CreditRecommendation
from learnerledger.domain.credit_rules import Append, CreditRules, Facts, decide
from learnerledger.domain.entries import Entry, EntryDraft
from learnerledger.domain.events import LedgerRequest, Result
from learnerledger.domain.hash_chain import append_to_chain, head_of
from learnerledger.domain.transcript import CompletionWithoutCredit, TranscriptProjection
from tests.support.domain import LEARNER, NOW, completion, course


def _chain(*steps: tuple[LedgerRequest, Facts]) -> list[Entry]:
    entries: list[Entry] = []
    for request, facts in steps:
        decision = decide(request, facts, rules=CreditRules(), now=NOW)
        assert isinstance(decision, Append)
        entries.append(append_to_chain(head_of(entries[-1]) if entries else None, decision.draft))
    return entries


def test_a_credential_carries_hours_basis_grade_score_and_evidence() -> None:
    request = replace(completion("c-1"), grade="A", evidence_url="https://mooc.example/c-1")
    (entry,) = _chain((request, Facts(course=course(hours=90))))
    state = TranscriptProjection.fold(LEARNER, [entry])
    credential = state.credentials[1]
    assert (credential.notional_hours, credential.hours_basis) == (90, "ncrf")
    assert (credential.grade, credential.score) == ("A", 81.0)
    assert credential.evidence_url == "https://mooc.example/c-1"
    bare = replace(completion("c-2", course_id="db-1"), score=None)
    (entry,) = _chain((bare, Facts(course=course(course_id="db-1"))))
    credential = TranscriptProjection.fold(LEARNER, [entry]).credentials[1]
    assert (credential.grade, credential.score, credential.evidence_url) == (None, None, None)


def test_failed_and_pending_completions_are_listed_and_survive_the_read_model() -> None:
    entries = _chain(
        (completion("c-1", result=Result.FAIL), Facts(course=course())),
        (
            completion("c-2", course_id="ai-1"),
            Facts(course=course(course_id="ai-1", recommendation=CreditRecommendation.PENDING)),
        ),
        (completion("c-3"), Facts(course=course())),  # a pass after the fail: credit
    )
    state = TranscriptProjection.fold(LEARNER, entries)
    assert state.completions_without_credit == 2
    listed = [
        (c.completion_id, c.result, c.no_credit_reason) for c in state.without_credit.values()
    ]
    assert listed == [("c-1", "fail", "result_fail"), ("c-2", "pass", "course_not_approved")]
    assert list(state.credentials) == [3]
    # The read model stores them as JSON and reads back the same fold.
    for stored in state.without_credit.values():
        assert CompletionWithoutCredit.from_json(LEARNER, stored.to_json()) == stored
    with pytest.raises(ValueError, match="sequence"):
        CompletionWithoutCredit.from_json(
            LEARNER, {**state.without_credit[1].to_json(), "sequence": 0}
        )
    with pytest.raises(ValueError, match="object"):
        CompletionWithoutCredit.from_json(LEARNER, ["c-1"])


def test_a_redecided_completion_leaves_the_list_for_the_credentials() -> None:
    (pending,) = _chain(
        (
            completion("c-1", course_id="ai-1"),
            Facts(course=course(course_id="ai-1", recommendation=CreditRecommendation.PENDING)),
        )
    )
    payload = {k: v for k, v in pending.payload.items() if k != "no_credit_reason"}
    payload.update(credits=3.0, valid_until="2033-06-01T09:30:00.000000Z", redecides_sequence=1)
    draft = EntryDraft(
        learner_id=LEARNER,
        kind=pending.kind.CREDIT_AWARDED,
        payload=payload,
        rules_version=1,
        source_event_id=pending.source_event_id,
        recorded_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    credited = append_to_chain(head_of(pending), draft)
    state = TranscriptProjection.fold(LEARNER, [pending, credited])
    assert state.without_credit == {}
    assert state.completions_without_credit == 0
    assert state.credentials[2].completion_id == "c-1"
