"""Field validation of issuer requests: pure functions, every violation reported at once.

Rules (field paths are relative to the request, e.g. ``completion.learner_id``):

- ``completion_id``: 1..128 characters, all printable (no control characters).
- ``learner_id``: an APAAR id, exactly 12 ASCII digits (shape only, DESIGN.md).
- ``course_id``: 1..128 characters and a course in the catalog. An unknown course is a field
  violation (INVALID_ARGUMENT, so it is reported together with the others); a known course of
  another issuer is PERMISSION_DENIED, checked only once the fields are valid.
- ``completed_at``: set, a valid timestamp, not before 2000-01-01 and not later than now plus
  the clock skew setting.
- ``result``: PASS or FAIL.
- ``score`` (optional): finite, 0..100. Consistency with the result: a PASS with score 0 and a
  FAIL with score 100 are contradictions.
- ``grade`` (optional): 1..16 printable characters. A PASS graded as a failure ("F", "FAIL",
  "AB", "ABSENT", case-insensitive) is a contradiction; a FAIL may carry any grade.
- ``evidence_url`` (optional): at most 2048 characters, an absolute ``https`` URL with a host
  and no whitespace (the proto contract says https only).
- Revocations: ``completion_id`` as above, ``reason`` 1..1000 characters, ``learner_id`` an
  APAAR id when given.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from learnerledger.domain.catalog import Course
from learnerledger.domain.events import (
    CURRENT_SCHEMA_VERSION,
    CompletionSubmitted,
    Envelope,
    Result,
    completion_event_id,
)
from learnerledger.domain.learners import is_apaar_id
from learnerledger.rpc.errors import Violation
from learnerledger.v1 import common_pb2

MAX_ID_CHARS = 128
MAX_GRADE_CHARS = 16
MAX_URL_CHARS = 2048
MAX_REASON_CHARS = 1000
EARLIEST_COMPLETION = datetime(2000, 1, 1, tzinfo=UTC)
FAILING_GRADES = frozenset({"F", "FAIL", "FAILED", "AB", "ABSENT"})
_RESULTS = {
    common_pb2.COMPLETION_RESULT_PASS: Result.PASS,
    common_pb2.COMPLETION_RESULT_FAIL: Result.FAIL,
}


def check_id(value: str, path: str, what: str = "id") -> list[Violation]:
    if not value:
        return [Violation(path, f"required: the {what} must not be empty")]
    if len(value) > MAX_ID_CHARS:
        return [Violation(path, f"at most {MAX_ID_CHARS} characters (got {len(value)})")]
    if not value.isprintable():
        return [Violation(path, "must contain only printable characters")]
    return []


def check_learner_id(value: str, path: str) -> list[Violation]:
    if not is_apaar_id(value):
        return [Violation(path, "must be an APAAR id: exactly 12 digits")]
    return []


def completed_at_of(completion: common_pb2.Completion) -> datetime | None:
    if not completion.HasField("completed_at"):
        return None
    try:
        return completion.completed_at.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def validate_completion(
    completion: common_pb2.Completion,
    *,
    courses: dict[str, Course] | None,
    now: datetime,
    clock_skew: timedelta,
    prefix: str = "completion",
) -> list[Violation]:
    """Every violation of the rules in the module docstring (empty when valid).

    ``courses`` maps course ids to catalog entries; None skips the catalog check.
    """
    p = f"{prefix}." if prefix else ""
    out: list[Violation] = []
    out += check_id(completion.completion_id, f"{p}completion_id", "completion id")
    out += check_learner_id(completion.learner_id, f"{p}learner_id")
    course_violations = check_id(completion.course_id, f"{p}course_id", "course id")
    if not course_violations and courses is not None and completion.course_id not in courses:
        course_violations.append(
            Violation(f"{p}course_id", f"unknown course {completion.course_id!r}")
        )
    out += course_violations

    if not completion.HasField("completed_at"):
        out.append(Violation(f"{p}completed_at", "required"))
    else:
        at = completed_at_of(completion)
        if at is None:
            out.append(Violation(f"{p}completed_at", "not a valid timestamp"))
        elif at < EARLIEST_COMPLETION:
            out.append(Violation(f"{p}completed_at", "must not be before 2000-01-01"))
        elif at > now + clock_skew:
            out.append(
                Violation(
                    f"{p}completed_at",
                    f"lies in the future (more than {clock_skew.total_seconds():.0f}s ahead)",
                )
            )

    result = _RESULTS.get(completion.result)
    if result is None:
        out.append(Violation(f"{p}result", "required: PASS or FAIL"))

    match completion.WhichOneof("assessment"):
        case "score":
            score = completion.score
            if not math.isfinite(score) or not 0 <= score <= 100:
                out.append(Violation(f"{p}score", "must be a number between 0 and 100"))
            elif result is Result.PASS and score == 0:
                out.append(Violation(f"{p}score", "a PASS cannot have score 0"))
            elif result is Result.FAIL and score == 100:
                out.append(Violation(f"{p}score", "a FAIL cannot have score 100"))
        case "grade":
            grade = completion.grade
            if not grade or len(grade) > MAX_GRADE_CHARS or not grade.isprintable():
                out.append(
                    Violation(f"{p}grade", f"must be 1..{MAX_GRADE_CHARS} printable characters")
                )
            elif result is Result.PASS and grade.strip().upper() in FAILING_GRADES:
                out.append(
                    Violation(f"{p}grade", f"a PASS cannot have the failing grade {grade!r}")
                )
        case _:
            pass

    out += check_evidence_url(completion.evidence_url, f"{p}evidence_url")
    return out


def check_evidence_url(url: str, path: str) -> list[Violation]:
    if not url:
        return []
    if len(url) > MAX_URL_CHARS:
        return [Violation(path, f"at most {MAX_URL_CHARS} characters (got {len(url)})")]
    if url.split() != [url] or not url.isprintable():  # split(): str.isspace() whitespace
        return [Violation(path, "must not contain whitespace or control characters")]
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return [Violation(path, "is not a well-formed URL")]
    if parts.scheme.lower() != "https" or not parts.hostname:
        return [Violation(path, "must be an absolute https:// URL with a host")]
    return []


def validate_revocation(completion_id: str, reason: str, learner_id: str) -> list[Violation]:
    out = check_id(completion_id, "completion_id", "completion id")
    if not reason.strip():
        out.append(Violation("reason", "required: say why the completion is revoked"))
    elif len(reason) > MAX_REASON_CHARS:
        out.append(Violation("reason", f"at most {MAX_REASON_CHARS} characters"))
    if learner_id:
        out += check_learner_id(learner_id, "learner_id")
    return out


def to_domain(
    completion: common_pb2.Completion, *, issuer_id: str, now: datetime
) -> CompletionSubmitted:
    """The domain event of a completion that passed :func:`validate_completion`."""
    at = completed_at_of(completion)
    assert at is not None
    which = completion.WhichOneof("assessment")
    return CompletionSubmitted(
        envelope=Envelope(
            event_id=completion_event_id(issuer_id, completion.completion_id),
            schema_version=CURRENT_SCHEMA_VERSION,
            occurred_at=now,
            issuer_id=issuer_id,
            learner_id=completion.learner_id,
        ),
        completion_id=completion.completion_id,
        course_id=completion.course_id,
        completed_at=at,
        result=_RESULTS[completion.result],
        score=completion.score if which == "score" else None,
        grade=completion.grade if which == "grade" else None,
        evidence_url=completion.evidence_url,
    )
