"""The credit rules as one versioned object, hours basis and levels (pure domain)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from learnerledger.domain.catalog import (
    NCRF_ALL_LEVELS,
    NCRF_LEVELS,
    Course,
    CourseCategory,
    CreditRecommendation,
    HoursBasis,
    InvalidCourse,
    levels_for,
)
from learnerledger.domain.credit_rules import (
    Append,
    CourseHours,
    CreditRules,
    Facts,
    Redecided,
    RulesHistory,
    UncreditedCompletion,
    UnknownRulesVersion,
    decide,
)
from learnerledger.domain.entries import Entry
from learnerledger.domain.events import CreditRedecisionRequested, Envelope, redecision_event_id
from learnerledger.domain.hash_chain import append_to_chain, head_of
from learnerledger.domain.rules_versions import BEGINNING, NheqfHours
from learnerledger.domain.transcript import TranscriptProjection, view_at
from tests.support.domain import APPROVED_IN_MARCH, JUNE, LEARNER, NOW, completion, course

#: Version 2 (from 2027): 25 NCrF hours per credit, 5 years of validity, an annual limit of 30.
FROM_2027 = datetime(2027, 1, 1, tzinfo=UTC)
V2 = CreditRules(
    version=2,
    effective_from=FROM_2027,
    ncrf_hours_per_credit=25,
    validity_years=5,
    annual_credit_limit=Decimal(30),
)
HISTORY = RulesHistory((CreditRules(), V2))


# Rules as one versioned object -----------------------------------------------------------------


def test_the_version_in_force_is_the_latest_effective_at_or_before_the_instant() -> None:
    assert HISTORY.in_force_at(FROM_2027 - timedelta(microseconds=1)).version == 1
    assert HISTORY.in_force_at(FROM_2027).version == 2
    assert HISTORY.version(1) == CreditRules()
    with pytest.raises(UnknownRulesVersion):
        HISTORY.version(3)


def test_versions_are_numbered_in_order_and_apply_one_after_the_other() -> None:
    with pytest.raises(ValueError, match="numbered"):
        RulesHistory((CreditRules(), dataclasses.replace(V2, version=3)))
    with pytest.raises(ValueError, match="after"):
        RulesHistory((CreditRules(), dataclasses.replace(V2, effective_from=BEGINNING)))
    with pytest.raises(ValueError, match="beginning"):
        RulesHistory((dataclasses.replace(CreditRules(), effective_from=FROM_2027),))


def test_a_completion_is_decided_with_the_version_in_force_and_records_it() -> None:
    # 90 hours: version 1 gives 90 / 30 = 3 credits valid 7 years, version 2 gives 90 / 25 = 3.6
    # rounded down to 3.5, valid 5 years.
    before = decide(completion(), Facts(course=course(hours=90)), rules=HISTORY, now=NOW)
    after = decide(completion(), Facts(course=course(hours=90)), rules=HISTORY, now=FROM_2027)
    assert isinstance(before, Append)
    assert isinstance(after, Append)
    assert (before.draft.rules_version, before.draft.payload["credits"]) == (1, 3.0)
    assert before.draft.payload["valid_until"] == "2033-06-01T09:30:00.000000Z"
    assert (after.draft.rules_version, after.draft.payload["credits"]) == (2, 3.5)
    assert after.draft.payload["valid_until"] == "2031-06-01T09:30:00.000000Z"


def test_a_redecision_reproduces_the_decision_with_the_version_the_entry_recorded() -> None:
    """A completion recorded under version 1 and credited (after a backdated approval) once
    version 2 is in force gets version 1's credits and validity, and records version 1."""
    pending = decide(
        completion("c-1", completed_at=JUNE),
        Facts(course=course(recommendation=CreditRecommendation.PENDING)),
        rules=HISTORY,
        now=NOW,
    )
    assert isinstance(pending, Append)
    assert pending.draft.rules_version == 1
    original = UncreditedCompletion(
        1, pending.draft.source_event_id, pending.draft.payload, rules_version=1
    )
    approved = dataclasses.replace(course(hours=90), history=(APPROVED_IN_MARCH,))
    request = CreditRedecisionRequested(
        Envelope(redecision_event_id(APPROVED_IN_MARCH.change_id, LEARNER), 2, NOW, "", LEARNER),
        "ml-101",
        APPROVED_IN_MARCH.change_id,
    )
    later = FROM_2027 + timedelta(days=30)
    decision = decide(
        request, Facts(course=approved, uncredited=(original,)), rules=HISTORY, now=later
    )
    assert isinstance(decision, Redecided)
    (draft,) = decision.drafts
    assert draft.rules_version == 1
    assert draft.payload["credits"] == 3.0  # version 2 would say 3.5
    assert draft.payload["valid_until"] == "2033-06-01T00:00:00.000000Z"
    # The same original recorded under version 2 is re-decided with version 2.
    v2_original = dataclasses.replace(original, rules_version=2)
    decision = decide(
        request, Facts(course=approved, uncredited=(v2_original,)), rules=HISTORY, now=later
    )
    assert isinstance(decision, Redecided)
    assert (decision.drafts[0].rules_version, decision.drafts[0].payload["credits"]) == (2, 3.5)


def test_the_annual_flag_reads_the_limit_of_the_version_in_force() -> None:
    """35 credits completed within a year: under version 1's 40 no flag, under version 2's 30
    flagged; the view says which limit it used."""
    entries: list[Entry] = []
    for n, hours in enumerate((600, 450), start=1):  # 20 + 15 credits
        decision = decide(
            completion(
                f"c-{n}", course_id=f"ml-{n}", completed_at=datetime(2026, 6, n, tzinfo=UTC)
            ),
            Facts(course=course(hours=hours, course_id=f"ml-{n}")),
            now=NOW,
        )
        assert isinstance(decision, Append)
        entries.append(append_to_chain(head_of(entries[-1]) if entries else None, decision.draft))
    state = TranscriptProjection.fold(LEARNER, entries)
    at_v1, at_v2 = NOW, datetime(2027, 1, 2, tzinfo=UTC)
    assert view_at(state, at_v1, rules=HISTORY).annual_limit == Decimal(40)
    assert not view_at(state, at_v1, rules=HISTORY).exceeds_annual_limit
    assert view_at(state, at_v2, rules=HISTORY).annual_limit == Decimal(30)
    assert view_at(state, at_v2, rules=HISTORY).exceeds_annual_limit
    # The deployment's rules: version 1's 40.
    assert view_at(state, at_v2).annual_limit == Decimal(40)


# Hours basis ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "credits"),
    [
        # NCrF: 30 notional hours per credit, whatever the component.
        (CourseHours(HoursBasis.NCRF, 90), "3"),
        (CourseHours(HoursBasis.NCRF, 90, theory=30, practical=30, experiential=30), "3"),
        # NHEQF: 15 h theory, 30 h practical, 45 h experiential per credit.
        # 30/15 + 30/30 + 30/45 = 2 + 1 + 0.67 = 3.67 -> 3.5
        (CourseHours(HoursBasis.NHEQF, 90, theory=30, practical=30, experiential=30), "3.5"),
        (CourseHours(HoursBasis.NHEQF, 45, theory=45), "3"),
        (CourseHours(HoursBasis.NHEQF, 60, practical=60), "2"),
        (CourseHours(HoursBasis.NHEQF, 90, experiential=90), "2"),
        # 10/15 + 10/45 = 0.67 + 0.22 = 0.89 -> 0.5 (each component alone would round to 0.5, 0)
        (CourseHours(HoursBasis.NHEQF, 20, theory=10, experiential=10), "0.5"),
    ],
)
def test_credits_by_basis_worked_examples(hours: CourseHours, credits: str) -> None:
    assert CreditRules().credits(hours) == Decimal(credits)


def test_nheqf_components_sum_exactly_before_rounding() -> None:
    # 30 theory + 30 practical + 30 experiential: 2 + 1 + 2/3 = 3 2/3 credits -> 3.5
    hours = CourseHours(HoursBasis.NHEQF, 90, theory=30, practical=30, experiential=30)
    assert CreditRules().exact_credits(hours) * 3 == 11
    assert CreditRules().credits(hours) == Decimal("3.5")
    # A version may change the NHEQF hours per credit: 20 h experiential -> 30 / 20 = 1.5 more.
    v = CreditRules(nheqf_hours_per_credit=NheqfHours(experiential=20))
    assert v.credits(hours) == Decimal("4.5")


def nheqf_course(theory: int, practical: int, experiential: int, **kw: object) -> Course:
    return Course(
        "lab-201",
        "iitm",
        "Lab methods",
        Decimal("5"),
        theory + practical + experiential,
        CreditRecommendation.APPROVED,
        hours_basis=HoursBasis.NHEQF,
        theory_hours=theory,
        practical_hours=practical,
        experiential_hours=experiential,
        **kw,  # type: ignore[arg-type]
    )


def test_an_entry_records_the_basis_and_the_hours_that_produced_its_credits() -> None:
    request = completion(issuer_id="iitm", course_id="lab-201")
    decision = decide(request, Facts(course=nheqf_course(30, 30, 30)), now=NOW)
    assert isinstance(decision, Append)
    p = decision.draft.payload
    assert p["hours_basis"] == "nheqf"
    assert (p["theory_hours"], p["practical_hours"], p["experiential_hours"]) == (30, 30, 30)
    assert (p["notional_hours"], p["credits"]) == (90, 3.5)


def test_an_entry_of_a_course_without_components_keeps_the_old_payload_shape() -> None:
    decision = decide(completion(), Facts(course=course(hours=90)), now=NOW)
    assert isinstance(decision, Append)
    assert decision.draft.payload["hours_basis"] == "ncrf"
    assert not {"theory_hours", "practical_hours", "experiential_hours"} & set(
        decision.draft.payload
    )


def test_a_course_declares_components_that_add_up_and_nheqf_needs_them() -> None:
    with pytest.raises(InvalidCourse) as sum_error:
        dataclasses.replace(nheqf_course(30, 30, 30), notional_hours=100)
    assert sum_error.value.field == "notional_hours"
    with pytest.raises(InvalidCourse) as nheqf_error:
        dataclasses.replace(course(), hours_basis=HoursBasis.NHEQF)
    assert nheqf_error.value.field == "hours_basis"
    with pytest.raises(InvalidCourse):
        dataclasses.replace(course(), hours_basis=HoursBasis.NHEQF_THEORY)
    with pytest.raises(InvalidCourse):
        nheqf_course(-1, 30, 31)


# Levels -----------------------------------------------------------------------------------------


def test_ncrf_runs_from_1_to_8_in_half_steps_and_skilling_may_use_all_of_it() -> None:
    assert sorted(NCRF_ALL_LEVELS) == [Decimal(n) / 2 for n in range(2, 17)]
    assert levels_for(CourseCategory.SKILLING) == NCRF_ALL_LEVELS
    for category in CourseCategory:
        if category is not CourseCategory.SKILLING:
            assert levels_for(category) == NCRF_LEVELS
    skilling = dataclasses.replace(course(), level=Decimal("3.5"), category=CourseCategory.SKILLING)
    assert skilling.level == Decimal("3.5")
    with pytest.raises(InvalidCourse) as below:
        dataclasses.replace(course(), level=Decimal("3.5"))
    assert "skilling" in below.value.message
    with pytest.raises(InvalidCourse):
        dataclasses.replace(skilling, level=Decimal("0.5"))
    with pytest.raises(InvalidCourse):
        dataclasses.replace(skilling, level=Decimal("4.25"))


def test_a_skilling_course_below_4_5_earns_credit_recording_its_level() -> None:
    skilling = dataclasses.replace(
        course(hours=60), level=Decimal("2.5"), category=CourseCategory.SKILLING
    )
    decision = decide(completion(), Facts(course=skilling), now=NOW)
    assert isinstance(decision, Append)
    assert (decision.draft.payload["level"], decision.draft.payload["credits"]) == ("2.5", 2.0)
