"""Field validation of issuer requests: the domain's rules on the wire types, every violation
reported at once.

The rules themselves live in :mod:`learnerledger.domain.validation` (the ledger applies the
same ones to every record it reads); this module maps protobuf messages onto them and their
violations onto ``learnerledger.rpc.errors.Violation`` (BadRequest field violations). What is
wire-only is checked here: a ``completed_at`` that is missing or not a valid timestamp, a
``result`` that is unspecified, a course that is not in the catalog (an unknown course is a
field violation, reported with the others; a known course of another issuer is
PERMISSION_DENIED, checked only once the fields are valid), and, by walking the message, a
control character in ANY string field of the request, so a field added later is covered too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from learnerledger.domain import validation as rules
from learnerledger.domain.catalog import Course
from learnerledger.rpc.errors import Violation
from learnerledger.v1 import common_pb2
from learnerledger.v1 import issuer_gateway_pb2 as gateway_pb2
from learnerledger.wire.enums import PROTO_TO_RESULT
from learnerledger.wire.instants import InstantOutOfRange, from_timestamp

MAX_ID_CHARS = rules.MAX_ID_CHARS
MAX_GRADE_CHARS = rules.MAX_GRADE_CHARS
MAX_URL_CHARS = rules.MAX_URL_CHARS
MAX_REASON_CHARS = rules.MAX_REASON_CHARS
EARLIEST_COMPLETION = rules.EARLIEST_COMPLETION
FAILING_GRADES = rules.FAILING_GRADES


def _wire(violations: list[rules.FieldViolation]) -> list[Violation]:
    return [Violation(v.field, v.description) for v in violations]


def check_id(value: str, path: str, what: str = "id") -> list[Violation]:
    return _wire(rules.check_id(value, path, what))


def check_learner_id(value: str, path: str) -> list[Violation]:
    return _wire(rules.check_learner_id(value, path))


def check_evidence_url(url: str, path: str) -> list[Violation]:
    return _wire(rules.check_evidence_url(url, path))


def _strings(message: Message, prefix: str) -> Iterator[tuple[str, str]]:
    """Every set string field of ``message`` and its sub-messages (repeated fields and maps
    included), as ``(path, value)``."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, Message):
            yield from _strings(value, f"{path}.")
        elif isinstance(value, Mapping):  # a map field
            for key, item in value.items():
                if isinstance(key, str):
                    yield f"{path}[key]", key
                if isinstance(item, str):
                    yield f"{path}[{key!r}]", item
                elif isinstance(item, Message):
                    yield from _strings(item, f"{path}[{key!r}].")
        elif field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE):
            for i, item in enumerate(value):  # a repeated field
                if isinstance(item, str):
                    yield f"{path}[{i}]", item
                else:
                    yield from _strings(item, f"{path}[{i}].")


def string_violations(message: Message, prefix: str = "") -> list[Violation]:
    """A violation for every string field of ``message`` (at any depth) that holds a control
    character: what the ledger could not store, whichever request and field it comes in."""
    return _wire(rules.check_strings(_strings(message, prefix)))


def _merge(first: list[Violation], more: list[Violation]) -> list[Violation]:
    """``first`` plus those of ``more`` whose field ``first`` does not already name."""
    named = {v.field for v in first}
    return first + [v for v in more if v.field not in named]


def completed_at_of(completion: common_pb2.Completion) -> datetime | None:
    if not completion.HasField("completed_at"):
        return None
    try:
        return from_timestamp(completion.completed_at)
    except InstantOutOfRange:
        return None


def validate_completion(
    completion: common_pb2.Completion,
    *,
    courses: dict[str, Course] | None,
    now: datetime,
    clock_skew: timedelta,
    prefix: str = "completion",
) -> list[Violation]:
    """Every violation of the rules (empty when valid).

    ``courses`` maps course ids to catalog entries; None skips the catalog check.
    """
    p = f"{prefix}." if prefix else ""
    out: list[Violation] = []
    at = completed_at_of(completion)
    if not completion.HasField("completed_at"):
        out.append(Violation(f"{p}completed_at", "required"))
    elif at is None:
        out.append(Violation(f"{p}completed_at", "not a valid timestamp"))
    result = PROTO_TO_RESULT.get(completion.result)
    if result is None:
        out.append(Violation(f"{p}result", "required: PASS or FAIL"))
    which = completion.WhichOneof("assessment")
    out += _wire(
        rules.validate_completion_fields(
            completion_id=completion.completion_id,
            learner_id=completion.learner_id,
            course_id=completion.course_id,
            completed_at=at,
            result=result,
            score=completion.score if which == "score" else None,
            grade=completion.grade if which == "grade" else None,
            evidence_url=completion.evidence_url,
            now=now,
            clock_skew=clock_skew,
            prefix=prefix,
        )
    )
    course_id = completion.course_id
    if (
        courses is not None
        and course_id not in courses
        and not rules.check_id(course_id, f"{p}course_id")
    ):
        out.append(Violation(f"{p}course_id", f"unknown course {course_id!r}"))
    return _merge(out, string_violations(completion, p))


def validate_revocation(completion_id: str, reason: str, learner_id: str) -> list[Violation]:
    out = _wire(rules.check_id(completion_id, "completion_id", "completion id"))
    out += _wire(rules.check_revocation_reason(reason))
    if learner_id:
        out += _wire(rules.check_learner_id(learner_id, "learner_id"))
    return out


def validate_revocation_request(request: gateway_pb2.RevokeCompletionRequest) -> list[Violation]:
    """:func:`validate_revocation` of a ``RevokeCompletionRequest``, plus the control-character
    rule on every string field it has (or will have)."""
    out = validate_revocation(request.completion_id, request.reason, request.learner_id)
    return _merge(out, string_violations(request))
