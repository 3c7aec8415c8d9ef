from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from learnerledger.domain.catalog import CreditRecommendation, InvalidCourse, parse_level
from learnerledger.domain.credit_rules import (
    AlreadyRecorded,
    Append,
    CourseHours,
    CreditRules,
    Facts,
    HoursBasis,
    PriorEntry,
    Rejected,
    RejectionReason,
    decide,
)
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.events import Result, completion_event_id
from tests.support.domain import ISSUER, NOW, completion, course, revocation

RULES = CreditRules()


@pytest.mark.parametrize(
    ("hours", "credits"),
    [
        (0, "0"),
        (14, "0"),
        (15, "0.5"),
        (29, "0.5"),
        (30, "1"),
        (89, "2.5"),
        (90, "3"),
        (1200, "40"),
    ],
)
def test_ncrf_credits_are_hours_over_30_rounded_down_to_half(hours: int, credits: str) -> None:
    assert RULES.credits_for_hours(hours) == Decimal(credits)


def test_nheqf_theory_basis_counts_15_hours_per_credit() -> None:
    hours = CourseHours(HoursBasis.NHEQF, 45, theory=45)
    assert RULES.credits(hours) == Decimal(3)


@given(st.integers(min_value=0, max_value=100_000))
def test_credits_never_exceed_hours_and_are_half_steps(hours: int) -> None:
    credits = RULES.credits_for_hours(hours)
    assert credits * 30 <= hours < (credits + Decimal("0.5")) * 30
    assert (credits * 2) == (credits * 2).to_integral_value()


def test_pass_of_approved_course_awards_credit_with_validity_of_seven_years() -> None:
    decision = decide(completion(), Facts(course=course(hours=90)), rules=RULES, now=NOW)
    assert isinstance(decision, Append)
    draft = decision.draft
    assert draft.kind is EntryKind.CREDIT_AWARDED
    assert draft.payload["credits"] == 3.0
    assert draft.payload["level"] == "5.5"
    assert draft.payload["hours_basis"] == "ncrf"
    assert draft.payload["valid_until"] == "2033-06-01T09:30:00.000000Z"
    assert draft.rules_version == 1
    assert draft.recorded_at == NOW


def test_fail_is_recorded_without_credit() -> None:
    decision = decide(
        completion(result=Result.FAIL, score=12.0), Facts(course=course()), rules=RULES, now=NOW
    )
    assert isinstance(decision, Append)
    assert decision.draft.kind is EntryKind.RECORDED_WITHOUT_CREDIT
    assert decision.draft.payload["no_credit_reason"] == "result_fail"
    assert decision.draft.payload["credits"] == 0


@pytest.mark.parametrize("state", [CreditRecommendation.PENDING, CreditRecommendation.WITHDRAWN])
def test_unapproved_course_is_recorded_without_credit(state: CreditRecommendation) -> None:
    decision = decide(
        completion(), Facts(course=course(recommendation=state)), rules=RULES, now=NOW
    )
    assert isinstance(decision, Append)
    assert decision.draft.payload["no_credit_reason"] == "course_not_approved"


def test_course_under_15_hours_earns_no_credit() -> None:
    decision = decide(completion(), Facts(course=course(hours=10)), rules=RULES, now=NOW)
    assert isinstance(decision, Append)
    assert decision.draft.payload["no_credit_reason"] == "zero_credits"


def test_unknown_and_foreign_courses_are_rejected() -> None:
    unknown = decide(completion(), Facts(course=None), rules=RULES, now=NOW)
    foreign = decide(completion(), Facts(course=course(issuer_id="nptel")), rules=RULES, now=NOW)
    assert isinstance(unknown, Rejected)
    assert unknown.reason is RejectionReason.UNKNOWN_COURSE
    assert isinstance(foreign, Rejected)
    assert foreign.reason is RejectionReason.FOREIGN_COURSE


def test_same_completion_again_is_already_recorded_but_different_content_conflicts() -> None:
    first = decide(completion(), Facts(course=course()), rules=RULES, now=NOW)
    assert isinstance(first, Append)
    prior = PriorEntry(4, first.draft.kind, first.draft.payload)
    retry = decide(completion(), Facts(same_event=prior, course=course()), rules=RULES, now=NOW)
    changed = decide(
        completion(score=99.0), Facts(same_event=prior, course=course()), rules=RULES, now=NOW
    )
    assert retry == AlreadyRecorded(4)
    assert isinstance(changed, Rejected)
    assert changed.reason is RejectionReason.COMPLETION_CONFLICT


def test_revocation_cancels_the_target_and_needs_one() -> None:
    awarded = decide(completion(), Facts(course=course()), rules=RULES, now=NOW)
    assert isinstance(awarded, Append)
    target = PriorEntry(1, awarded.draft.kind, awarded.draft.payload)
    revoked = decide(revocation(), Facts(revocation_target=target), rules=RULES, now=NOW)
    missing = decide(revocation(), Facts(), rules=RULES, now=NOW)
    twice = decide(
        revocation(), Facts(revocation_target=target, target_revoked=True), rules=RULES, now=NOW
    )
    assert isinstance(revoked, Append)
    assert revoked.draft.kind is EntryKind.CREDIT_REVOKED
    assert revoked.draft.payload["revoked_sequence"] == 1
    assert revoked.draft.payload["credits"] == 3.0
    assert isinstance(missing, Rejected)
    assert missing.reason is RejectionReason.REVOCATION_TARGET_NOT_FOUND
    assert isinstance(twice, Rejected)
    assert twice.reason is RejectionReason.ALREADY_REVOKED


def test_malformed_learner_id_is_rejected() -> None:
    decision = decide(completion(learner_id="12345"), Facts(course=course()), rules=RULES, now=NOW)
    assert isinstance(decision, Rejected)
    assert decision.reason is RejectionReason.INVALID_EVENT


def test_completion_event_id_is_deterministic_per_issuer_and_completion() -> None:
    assert completion_event_id(ISSUER, "c-1") == completion_event_id(ISSUER, "c-1")
    assert completion_event_id(ISSUER, "c-1") != completion_event_id("other", "c-1")
    assert completion_event_id(ISSUER, "c-1") != completion_event_id(ISSUER, "c-2")


def test_leap_day_validity_moves_to_first_of_march() -> None:
    assert RULES.valid_until(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2035, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("level", ["4.5", "5", "6.0", "8"])
def test_ncrf_levels_parse(level: str) -> None:
    assert parse_level(level) == Decimal(level)


@pytest.mark.parametrize("level", ["4", "7.5", "9", "abc"])
def test_other_levels_are_refused(level: str) -> None:
    with pytest.raises(InvalidCourse) as info:
        parse_level(level)
    assert info.value.field == "level"
