"""A completion is decided on the catalog as it was at ``completed_at`` (DESIGN.md)."""

from __future__ import annotations

import dataclasses
import uuid
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
from learnerledger.domain.credit_rules import Append, CreditRules, Facts, decide
from learnerledger.domain.entries import EntryKind
from tests.unit.domain_builders import NOW, completion, course

RULES = CreditRules()
MARCH = datetime(2026, 3, 1, tzinfo=UTC)
JUNE = datetime(2026, 6, 1, tzinfo=UTC)
SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)


def change(
    state: CreditRecommendation,
    effective_at: datetime,
    *,
    recorded_at: datetime = NOW,
    reason: str = "committee minutes",
) -> RecommendationChange:
    return RecommendationChange(uuid.uuid4(), "ml-101", state, effective_at, recorded_at, reason)


APPROVED_IN_MARCH = change(CreditRecommendation.APPROVED, MARCH)
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
