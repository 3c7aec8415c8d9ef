"""A completion is decided on the catalog as it was at ``completed_at`` (docs/domain.md)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from learnerledger.domain.catalog import (
    ApprovedPeriod,
    CreditRecommendation,
    InvalidCourse,
    RecommendationChange,
    approved_periods,
    recommendation_at,
)
from learnerledger.domain.credit_rules import (
    AlreadyRecorded,
    Append,
    CreditRules,
    Facts,
    PriorEntry,
    Redecided,
    UncreditedCompletion,
    decide,
)
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.events import (
    CreditRedecisionRequested,
    Envelope,
    redecided_entry_event_id,
    redecision_event_id,
)
from tests.support.domain import (
    APPROVED_IN_MARCH,
    JUNE,
    LEARNER,
    MARCH,
    NOW,
    change,
    completion,
    course,
)

RULES = CreditRules()
SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)


WITHDRAWN_IN_SEPTEMBER = change(CreditRecommendation.WITHDRAWN, SEPTEMBER)


def decided_kind(completed_at: datetime, *history: RecommendationChange) -> EntryKind:
    the_course = dataclasses.replace(
        course(recommendation=CreditRecommendation.WITHDRAWN), history=history
    )
    decision = decide(
        completion(completed_at=completed_at), Facts(course=the_course), rules=RULES, now=NOW
    )
    assert isinstance(decision, Append)
    return decision.draft.kind


def test_completion_made_while_approved_earns_credit_after_a_later_withdrawal() -> None:
    # Recorded in November, after the withdrawal: decided on the state in June.
    assert decided_kind(JUNE, APPROVED_IN_MARCH, WITHDRAWN_IN_SEPTEMBER) is (
        EntryKind.CREDIT_AWARDED
    )


def test_completion_before_the_approval_or_after_the_withdrawal_earns_none() -> None:
    history = (APPROVED_IN_MARCH, WITHDRAWN_IN_SEPTEMBER)
    before, after = MARCH - timedelta(seconds=1), SEPTEMBER
    assert decided_kind(before, *history) is EntryKind.RECORDED_WITHOUT_CREDIT
    assert decided_kind(after, *history) is EntryKind.RECORDED_WITHOUT_CREDIT


def test_the_state_at_an_instant_is_the_latest_effective_change_and_later_record_wins_a_tie() -> (
    None
):
    history = [
        change(CreditRecommendation.APPROVED, MARCH, recorded_at=NOW),
        change(CreditRecommendation.WITHDRAWN, MARCH, recorded_at=NOW + timedelta(hours=1)),
    ]
    assert recommendation_at(history, MARCH - timedelta(days=1)) is CreditRecommendation.PENDING
    assert recommendation_at(history, JUNE) is CreditRecommendation.WITHDRAWN
    # Recorded order in the list does not matter, only (effective_at, recorded_at).
    assert recommendation_at(history[::-1], JUNE) is CreditRecommendation.WITHDRAWN


def test_approved_periods_are_opened_by_approvals_and_closed_by_withdrawals() -> None:
    reapproved = change(CreditRecommendation.APPROVED, SEPTEMBER + timedelta(days=30))
    periods = approved_periods([reapproved, WITHDRAWN_IN_SEPTEMBER, APPROVED_IN_MARCH])
    assert periods == [
        ApprovedPeriod(MARCH, SEPTEMBER, APPROVED_IN_MARCH.change_id),
        ApprovedPeriod(reapproved.effective_at, None, reapproved.change_id),
    ]
    assert periods[0].contains(JUNE)
    assert not periods[0].contains(SEPTEMBER)


def test_a_backdated_change_must_say_why() -> None:
    with pytest.raises(InvalidCourse) as raised:
        change(CreditRecommendation.APPROVED, MARCH, reason="  ")
    assert raised.value.field == "reason"
    # Effective now (or within the grace of a few minutes) needs no reason.
    recent = change(CreditRecommendation.APPROVED, NOW - timedelta(minutes=1), reason="")
    assert not recent.is_backdated


# Re-decision after an approval ----------------------------------------------------------------


def uncredited(sequence: int, completed_at: datetime, **overrides: object) -> UncreditedCompletion:
    request = completion(f"c-{sequence}", completed_at=completed_at)
    decision = decide(
        request,
        Facts(course=course(recommendation=CreditRecommendation.PENDING)),
        rules=RULES,
        now=NOW,
    )
    assert isinstance(decision, Append)
    assert decision.draft.payload["no_credit_reason"] == "course_not_approved"
    fields: dict[str, object] = {
        "sequence": sequence,
        "source_event_id": request.envelope.event_id,
        "payload": decision.draft.payload,
    }
    fields.update(overrides)
    return UncreditedCompletion(**fields)  # type: ignore[arg-type]


def redecide(*candidates: UncreditedCompletion) -> Redecided:
    the_course = dataclasses.replace(
        course(recommendation=CreditRecommendation.WITHDRAWN),
        history=(APPROVED_IN_MARCH, WITHDRAWN_IN_SEPTEMBER),
    )
    request = CreditRedecisionRequested(
        Envelope(redecision_event_id(APPROVED_IN_MARCH.change_id, LEARNER), 2, NOW, "", LEARNER),
        "ml-101",
        APPROVED_IN_MARCH.change_id,
    )
    decision = decide(
        request, Facts(course=the_course, uncredited=candidates), rules=RULES, now=NOW
    )
    assert isinstance(decision, Redecided)
    return decision


def test_an_approval_credits_uncredited_completions_inside_its_period_referencing_both() -> None:
    inside = uncredited(3, JUNE)
    decision = redecide(uncredited(2, MARCH - timedelta(days=1)), inside, uncredited(4, SEPTEMBER))
    (draft,) = decision.drafts
    assert draft.kind is EntryKind.CREDIT_AWARDED
    assert draft.payload["redecides_sequence"] == 3
    assert draft.payload["approval_id"] == str(APPROVED_IN_MARCH.change_id)
    assert draft.payload["credits"] == 3.0
    assert draft.payload["completion_id"] == "c-3"
    assert "no_credit_reason" not in draft.payload
    # The idempotency key: the same (approval, original entry) always names the same event.
    assert draft.source_event_id == redecided_entry_event_id(
        APPROVED_IN_MARCH.change_id, inside.source_event_id
    )


def test_revoked_already_redecided_and_failed_completions_earn_nothing() -> None:
    failed = uncredited(5, JUNE)
    failed = dataclasses.replace(failed, payload={**failed.payload, "result": "fail"})
    decision = redecide(
        uncredited(3, JUNE, revoked=True), uncredited(4, JUNE, redecided=True), failed
    )
    assert decision.drafts == ()


def test_a_credit_survives_a_later_withdrawal_in_the_transcript() -> None:
    the_course = dataclasses.replace(course(), history=(APPROVED_IN_MARCH,))
    awarded = decide(completion(completed_at=JUNE), Facts(course=the_course), rules=RULES, now=NOW)
    assert isinstance(awarded, Append)
    assert awarded.draft.kind is EntryKind.CREDIT_AWARDED
    withdrawn_later = dataclasses.replace(
        the_course, history=(APPROVED_IN_MARCH, WITHDRAWN_IN_SEPTEMBER)
    )
    # Deciding the same completion again meets its own entry: nothing is re-decided away.
    prior = PriorEntry(1, awarded.draft.kind, awarded.draft.payload)
    again = decide(
        completion(completed_at=JUNE),
        Facts(same_event=prior, course=withdrawn_later),
        rules=RULES,
        now=NOW,
    )
    assert again == AlreadyRecorded(1)
