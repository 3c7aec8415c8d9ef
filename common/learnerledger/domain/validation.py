"""The field rules of every request: one pure function, applied at the gateway AND the ledger.

Kafka is a trust boundary: whatever reaches ``completions.v1`` (through the gateway, a
re-drive, a replay, or straight from a client of the broker) is checked again by the ledger
with exactly these rules before the credit rules see it. A request that breaks one is rejected
(reason ``invalid_request``) with every violation in the detail; it never reaches SQL.

Rules (field paths are relative to the request, e.g. ``completion.learner_id``):

- No string field holds a control character (Unicode category Cc: NUL, C0, DEL, C1). The
  ledger cannot store NUL (PostgreSQL text and jsonb refuse it) and no field needs the others.
- ids (``completion_id``, ``course_id``, an issuer id, a university id): 1..128 characters,
  all printable.
- ``learner_id``: an APAAR id, exactly 12 ASCII digits (shape only, docs/domain.md).
- ``completed_at``: set, not before 2000-01-01 and not later than now plus the clock skew.
- ``result``: PASS or FAIL.
- ``score`` (optional): finite, 0..100. A PASS with score 0 and a FAIL with score 100 are
  contradictions.
- ``grade`` (optional): 1..16 printable characters. A PASS graded as a failure ("F", "FAIL",
  "FAILED", "AB", "ABSENT", case-insensitive) is a contradiction; a FAIL may carry any grade.
- ``evidence_url`` (optional): at most 2048 characters, an absolute ``https`` URL with a host
  and no whitespace (the proto contract says https only).
- Revocations: ``completion_id`` as above, ``reason`` 1..1000 characters, not only blanks.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from learnerledger.domain.events import (
    CompletionSubmitted,
    ConsentGrantRequested,
    ConsentRevokeRequested,
    CreditRedecisionRequested,
    LedgerRequest,
    RedemptionRequested,
    Result,
    RevocationRequested,
)
from learnerledger.domain.learners import is_apaar_id

MAX_ID_CHARS = 128
MAX_GRADE_CHARS = 16
MAX_URL_CHARS = 2048
MAX_REASON_CHARS = 1000
#: A consent's purpose, in the grantor's words.
MAX_PURPOSE_CHARS = 500
EARLIEST_COMPLETION = datetime(2000, 1, 1, tzinfo=UTC)
#: How far ahead of the checker's clock a completion date may lie (the gateway's default).
DEFAULT_CLOCK_SKEW = timedelta(seconds=300)
FAILING_GRADES = frozenset({"F", "FAIL", "FAILED", "AB", "ABSENT"})


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field: ``field`` is a dotted path relative to the request."""

    field: str
    description: str


def has_control_character(value: str) -> bool:
    """True when ``value`` holds a character of Unicode category Cc (NUL, C0, DEL, C1)."""
    return any(unicodedata.category(ch) == "Cc" for ch in value)


def check_text(value: str, path: str) -> list[FieldViolation]:
    """The rule every string field obeys, whatever else applies to it."""
    if has_control_character(value):
        return [FieldViolation(path, "must not contain control characters (such as NUL)")]
    return []


def check_strings(values: Iterable[tuple[str, str]]) -> list[FieldViolation]:
    """:func:`check_text` over ``(path, value)`` pairs."""
    return [v for path, value in values for v in check_text(value, path)]


def check_id(value: str, path: str, what: str = "id") -> list[FieldViolation]:
    if not value:
        return [FieldViolation(path, f"required: the {what} must not be empty")]
    if len(value) > MAX_ID_CHARS:
        return [FieldViolation(path, f"at most {MAX_ID_CHARS} characters (got {len(value)})")]
    if not value.isprintable():
        return [FieldViolation(path, "must contain only printable characters")]
    return []


def check_learner_id(value: str, path: str) -> list[FieldViolation]:
    if not is_apaar_id(value):
        return [FieldViolation(path, "must be an APAAR id: exactly 12 digits")]
    return []


def check_completed_at(
    at: datetime, path: str, *, now: datetime, clock_skew: timedelta
) -> list[FieldViolation]:
    if at < EARLIEST_COMPLETION:
        return [FieldViolation(path, "must not be before 2000-01-01")]
    if at > now + clock_skew:
        return [
            FieldViolation(
                path, f"lies in the future (more than {clock_skew.total_seconds():.0f}s ahead)"
            )
        ]
    return []


def check_assessment(
    result: Result | None, score: float | None, grade: str | None, prefix: str
) -> list[FieldViolation]:
    """``score`` / ``grade`` (at most one is set) and their consistency with ``result``."""
    if score is not None:
        if not math.isfinite(score) or not 0 <= score <= 100:
            return [FieldViolation(f"{prefix}score", "must be a number between 0 and 100")]
        if result is Result.PASS and score == 0:
            return [FieldViolation(f"{prefix}score", "a PASS cannot have score 0")]
        if result is Result.FAIL and score == 100:
            return [FieldViolation(f"{prefix}score", "a FAIL cannot have score 100")]
    if grade is not None:
        if not grade or len(grade) > MAX_GRADE_CHARS or not grade.isprintable():
            return [
                FieldViolation(
                    f"{prefix}grade", f"must be 1..{MAX_GRADE_CHARS} printable characters"
                )
            ]
        if result is Result.PASS and grade.strip().upper() in FAILING_GRADES:
            return [
                FieldViolation(f"{prefix}grade", f"a PASS cannot have the failing grade {grade!r}")
            ]
    return []


def check_evidence_url(url: str, path: str) -> list[FieldViolation]:
    if not url:
        return []
    if len(url) > MAX_URL_CHARS:
        return [FieldViolation(path, f"at most {MAX_URL_CHARS} characters (got {len(url)})")]
    if url.split() != [url] or not url.isprintable():  # split(): str.isspace() whitespace
        return [FieldViolation(path, "must not contain whitespace or control characters")]
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return [FieldViolation(path, "is not a well-formed URL")]
    if parts.scheme.lower() != "https" or not parts.hostname:
        return [FieldViolation(path, "must be an absolute https:// URL with a host")]
    return []


def check_consent_purpose(
    purpose: str, path: str = "purpose", *, required: bool
) -> list[FieldViolation]:
    if required and not purpose.strip():
        return [FieldViolation(path, "required: say what the reader may use the record for")]
    if len(purpose) > MAX_PURPOSE_CHARS:
        return [FieldViolation(path, f"at most {MAX_PURPOSE_CHARS} characters")]
    return check_text(purpose, path)


def check_revocation_reason(reason: str, path: str = "reason") -> list[FieldViolation]:
    if not reason.strip():
        return [FieldViolation(path, "required: say why the completion is revoked")]
    if len(reason) > MAX_REASON_CHARS:
        return [FieldViolation(path, f"at most {MAX_REASON_CHARS} characters")]
    return check_text(reason, path)


def validate_completion_fields(
    *,
    completion_id: str,
    learner_id: str,
    course_id: str,
    completed_at: datetime | None,
    result: Result | None,
    score: float | None,
    grade: str | None,
    evidence_url: str,
    now: datetime,
    clock_skew: timedelta,
    prefix: str = "completion",
) -> list[FieldViolation]:
    """Every rule on a completion's fields. ``completed_at`` / ``result`` None: the caller
    found them missing or unreadable and reports that itself."""
    p = f"{prefix}." if prefix else ""
    out: list[FieldViolation] = []
    out += check_id(completion_id, f"{p}completion_id", "completion id")
    out += check_learner_id(learner_id, f"{p}learner_id")
    out += check_id(course_id, f"{p}course_id", "course id")
    if completed_at is not None:
        out += check_completed_at(completed_at, f"{p}completed_at", now=now, clock_skew=clock_skew)
    out += check_assessment(result, score, grade, p)
    out += check_evidence_url(evidence_url, f"{p}evidence_url")
    # Whatever field-specific rule already reported, a control character is reported once.
    reported = {v.field for v in out}
    out += [
        v
        for v in check_strings(
            [
                (f"{p}completion_id", completion_id),
                (f"{p}learner_id", learner_id),
                (f"{p}course_id", course_id),
                (f"{p}grade", grade or ""),
                (f"{p}evidence_url", evidence_url),
            ]
        )
        if v.field not in reported
    ]
    return out


def validate_request(
    request: LedgerRequest, *, now: datetime, clock_skew: timedelta = DEFAULT_CLOCK_SKEW
) -> list[FieldViolation]:
    """Every violation of the rules above by a decoded ``completions.v1`` request (empty when
    valid): what the ledger checks before it decides anything. Paths follow the event."""
    env = request.envelope
    match request:
        case CompletionSubmitted():
            out = check_id(env.issuer_id, "envelope.issuer_id", "issuer id")
            out += validate_completion_fields(
                completion_id=request.completion_id,
                learner_id=env.learner_id,
                course_id=request.course_id,
                completed_at=request.completed_at,
                result=request.result,
                score=request.score,
                grade=request.grade,
                evidence_url=request.evidence_url,
                now=now,
                clock_skew=clock_skew,
            )
            return _once_per_field(out)
        case RevocationRequested():
            out = check_learner_id(env.learner_id, "envelope.learner_id")
            out += check_id(env.issuer_id, "envelope.issuer_id", "issuer id")
            out += check_id(request.completion_id, "completion_id", "completion id")
            out += check_revocation_reason(request.reason)
            return out
        case ConsentGrantRequested() | ConsentRevokeRequested():
            out = check_learner_id(env.learner_id, "envelope.learner_id")
            # A learner's own request: the envelope's issuer id is empty or an id.
            if env.issuer_id:
                out += check_id(env.issuer_id, "envelope.issuer_id", "issuer id")
            out += check_id(request.university_id, "university_id", "university id")
            if isinstance(request, ConsentGrantRequested):
                out += check_consent_purpose(request.purpose, required=False)
            return out
        case CreditRedecisionRequested():
            # The ledger's own request (the approval fan-out): the envelope's issuer id is empty.
            out = check_learner_id(env.learner_id, "envelope.learner_id")
            out += check_id(request.course_id, "course_id", "course id")
            return out
        case RedemptionRequested():
            out = check_learner_id(env.learner_id, "envelope.learner_id")
            out += check_redemption_fields(
                redemption_id=request.redemption_id,
                programme_id=request.programme_id,
                credential_sequences=request.credential_sequences,
                all_eligible=request.all_eligible,
            )
            out += check_id(request.university_id, "university_id", "university id")
            return out


#: A redemption names at most this many credentials (a degree is at most 320 credits).
MAX_REDEMPTION_CREDENTIALS = 1000


def check_redemption_fields(
    *,
    redemption_id: str,
    programme_id: str,
    credential_sequences: Iterable[int],
    all_eligible: bool,
) -> list[FieldViolation]:
    """The field rules of a redemption request (RedeemCredits and RedemptionRequested): ids,
    and either credential sequences (each at least 1, none twice, at most 1000) or
    ``all_eligible``, not both."""
    out = check_id(redemption_id, "redemption_id", "redemption id")
    out += check_id(programme_id, "programme_id", "programme id")
    sequences = list(credential_sequences)
    if all_eligible and sequences:
        out.append(FieldViolation("credential_sequences", "must be empty when all_eligible is set"))
    elif not all_eligible and not sequences:
        out.append(
            FieldViolation("credential_sequences", "required: name credentials or set all_eligible")
        )
    if len(sequences) > MAX_REDEMPTION_CREDENTIALS:
        out.append(
            FieldViolation(
                "credential_sequences", f"at most {MAX_REDEMPTION_CREDENTIALS} credentials"
            )
        )
    seen: set[int] = set()
    for index, sequence in enumerate(sequences):
        if sequence < 1:
            out.append(FieldViolation(f"credential_sequences[{index}]", "must be at least 1"))
        elif sequence in seen:
            out.append(FieldViolation(f"credential_sequences[{index}]", "named twice"))
        seen.add(sequence)
    return out


def _once_per_field(violations: list[FieldViolation]) -> list[FieldViolation]:
    seen: set[str] = set()
    out: list[FieldViolation] = []
    for v in violations:
        if v.field not in seen:
            seen.add(v.field)
            out.append(v)
    return out


def printable(value: str, limit: int) -> str:
    """``value`` fit for a text column, a log line or a protobuf string whatever it holds: every
    control or surrogate character escaped (``\\x00``), cut to ``limit`` characters."""
    escaped = "".join(
        ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Cs")
        else ch
        for ch in value
    )
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def describe(violations: Iterable[FieldViolation]) -> str:
    """One line for logs, rejections and dead letters; values are never quoted raw."""
    return "; ".join(f"{v.field}: {v.description}" for v in violations)
