"""A learner earns a course's credit once (docs/domain.md, credit rules)."""

from __future__ import annotations

import dataclasses

import pytest

from learnerledger.domain.catalog import InvalidCourse
from learnerledger.domain.credit_rules import Append, CreditRules, Facts, decide
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.events import Result
from tests.support.domain import NOW, completion, course

RULES = CreditRules()


def decided(facts: Facts, *, result: Result = Result.PASS) -> Append:
    decision = decide(completion("c-2", result=result), facts, rules=RULES, now=NOW)
    assert isinstance(decision, Append)
    return decision


def test_a_second_pass_of_a_credited_course_is_recorded_without_credit_naming_the_holder() -> None:
    second = decided(Facts(course=course(), credit_held_by=4))
    assert second.draft.kind is EntryKind.RECORDED_WITHOUT_CREDIT
    assert second.draft.payload["no_credit_reason"] == "already_credited"
    assert second.draft.payload["credited_sequence"] == 4
    assert second.draft.payload["credits"] == 0


def test_a_pass_without_credit_held_earns_credit_and_a_fail_stays_a_fail() -> None:
    # The adapter counts only unrevoked credit: a pass after a fail (or after a revoked credit)
    # meets no holder and earns credit.
    assert decided(Facts(course=course())).draft.kind is EntryKind.CREDIT_AWARDED
    failed = decided(Facts(course=course(), credit_held_by=4), result=Result.FAIL)
    assert failed.draft.payload["no_credit_reason"] == "result_fail"


def test_a_version_counts_as_the_course_it_names() -> None:
    version = dataclasses.replace(course(course_id="ml-101-v2"), counts_as="ml-101")
    assert version.credit_group == "ml-101"
    assert course().credit_group == "ml-101"
    with pytest.raises(InvalidCourse) as raised:
        dataclasses.replace(course(), counts_as="ml-101")
    assert raised.value.field == "counts_as_course_id"
