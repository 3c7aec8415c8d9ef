"""The shared field rules (learnerledger.domain.validation), as the ledger applies them to a
decoded request; the gateway's wire mapping is covered in test_gateway_validation."""

from __future__ import annotations

import dataclasses
import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from learnerledger.domain.events import (
    CompletionSubmitted,
    ConsentGrantRequested,
    ConsentRevokeRequested,
    Envelope,
    LedgerRequest,
    Result,
    RevocationRequested,
)
from learnerledger.domain.validation import (
    DEFAULT_CLOCK_SKEW,
    describe,
    printable,
    validate_request,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LEARNER = "123456789012"


def envelope(issuer_id: str = "swayam", learner_id: str = LEARNER) -> Envelope:
    return Envelope(uuid.uuid4(), 2, NOW, issuer_id, learner_id)


def submitted(**changes: object) -> CompletionSubmitted:
    good = CompletionSubmitted(
        envelope(),
        "c-1",
        "ml-101",
        NOW - timedelta(days=1),
        Result.PASS,
        score=80.0,
        evidence_url="https://certs.example.org/c-1",
    )
    return dataclasses.replace(good, **changes)  # type: ignore[arg-type]


def fields(request: LedgerRequest) -> list[str]:
    return [v.field for v in validate_request(request, now=NOW)]


def test_valid_requests_of_every_kind_have_no_violations() -> None:
    assert fields(submitted()) == []
    assert fields(submitted(score=None, grade="A+")) == []
    assert fields(RevocationRequested(envelope(), "c-1", "issued in error")) == []
    assert fields(ConsentGrantRequested(envelope(issuer_id=""), "du")) == []
    assert fields(ConsentRevokeRequested(envelope(issuer_id=""), "du")) == []


def test_the_issue_example_score_1000_in_2100_is_invalid() -> None:
    request = submitted(score=1000.0, completed_at=datetime(2100, 1, 1, tzinfo=UTC))
    assert sorted(fields(request)) == ["completion.completed_at", "completion.score"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"completion_id": "c\x00-1"}, "completion.completion_id"),
        ({"course_id": "ml\x00101"}, "completion.course_id"),
        ({"score": None, "grade": "A\x00"}, "completion.grade"),
        ({"evidence_url": "https://ex.org/\x00"}, "completion.evidence_url"),
        ({"envelope": envelope(issuer_id="sway\x00am")}, "envelope.issuer_id"),
        ({"envelope": envelope(learner_id="12345678901\x00")}, "completion.learner_id"),
        ({"completion_id": "c" * 129}, "completion.completion_id"),
        ({"course_id": ""}, "completion.course_id"),
        ({"score": None, "grade": "A" * 17}, "completion.grade"),
        ({"evidence_url": "https://ex.org/" + "a" * 2048}, "completion.evidence_url"),
        ({"evidence_url": "http://ex.org/c-1"}, "completion.evidence_url"),
        ({"score": math.nan}, "completion.score"),
        ({"score": math.inf}, "completion.score"),
        ({"score": -0.5}, "completion.score"),
        ({"score": 100.5}, "completion.score"),
        ({"score": 0.0}, "completion.score"),  # a PASS with 0
        ({"score": None, "grade": "absent"}, "completion.grade"),  # a PASS graded as a fail
        ({"completed_at": datetime(1999, 12, 31, tzinfo=UTC)}, "completion.completed_at"),
        ({"completed_at": datetime(9999, 12, 31, tzinfo=UTC)}, "completion.completed_at"),
        (
            {"completed_at": NOW + DEFAULT_CLOCK_SKEW + timedelta(seconds=1)},
            "completion.completed_at",
        ),
    ],
)
def test_each_completion_rule_names_its_field(changes: dict[str, object], field: str) -> None:
    assert fields(submitted(**changes)) == [field]


def test_the_clock_skew_bound_is_inclusive() -> None:
    assert fields(submitted(completed_at=NOW + DEFAULT_CLOCK_SKEW)) == []
    late = submitted(completed_at=NOW + timedelta(hours=1))
    assert validate_request(late, now=NOW, clock_skew=timedelta(hours=1)) == []


def test_a_fail_may_carry_a_failing_grade_but_not_score_100() -> None:
    assert fields(submitted(result=Result.FAIL, score=None, grade="F")) == []
    assert fields(submitted(result=Result.FAIL, score=100.0)) == ["completion.score"]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (RevocationRequested(envelope(), "c-1", "issued\x00in error"), "reason"),
        (RevocationRequested(envelope(), "c-1", "issued in error\x1b[2J"), "reason"),
        (RevocationRequested(envelope(), "c-1", "\u0085"), "reason"),  # C1 control
        (RevocationRequested(envelope(), "c-1", "   "), "reason"),
        (RevocationRequested(envelope(), "c-1", "r" * 1001), "reason"),
        (RevocationRequested(envelope(), "c\x00-1", "issued in error"), "completion_id"),
        (RevocationRequested(envelope(issuer_id=""), "c-1", "x"), "envelope.issuer_id"),
        (RevocationRequested(envelope(learner_id="1"), "c-1", "x"), "envelope.learner_id"),
        (ConsentGrantRequested(envelope(), "d\x00u"), "university_id"),
        (ConsentGrantRequested(envelope(), ""), "university_id"),
        (ConsentRevokeRequested(envelope(), "u" * 129), "university_id"),
        (ConsentRevokeRequested(envelope(issuer_id="x\x00"), "du"), "envelope.issuer_id"),
    ],
)
def test_revocation_and_consent_rules_name_their_field(request_: LedgerRequest, field: str) -> None:
    assert fields(request_) == [field]


def test_a_reason_in_any_script_with_punctuation_is_valid() -> None:
    reason = "प्रमाणपत्र गलती से जारी — issued in error (ticket #42) ✓"
    assert fields(RevocationRequested(envelope(), "c-1", reason)) == []


def test_every_violation_is_reported_once_per_field() -> None:
    request = submitted(completion_id="\x00" * 200, score=-1.0, evidence_url="ftp://\x00")
    violations = validate_request(request, now=NOW)
    assert [v.field for v in violations] == [
        "completion.completion_id",
        "completion.score",
        "completion.evidence_url",
    ]
    line = describe(violations)
    assert line.startswith("completion.completion_id: at most 128 characters")
    assert "\x00" not in line


def test_printable_escapes_controls_and_surrogates_and_cuts() -> None:
    assert printable("a\x00b\n\x85\ud800é", 100) == "a\\x00b\\n\\x85\\ud800é"
    assert printable("x" * 10, 5) == "xxxx…"
    assert printable("ok", 2) == "ok"
