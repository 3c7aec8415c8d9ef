"""What became of one submitted completion, or of one learner of a batch read, as plain data."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

from learnerledger.v1 import issuer_gateway_pb2, transcript_query_pb2


class Acceptance(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


_BY_STATUS = {
    issuer_gateway_pb2.ACCEPTANCE_STATUS_ACCEPTED: Acceptance.ACCEPTED,
    issuer_gateway_pb2.ACCEPTANCE_STATUS_DUPLICATE: Acceptance.DUPLICATE,
    issuer_gateway_pb2.ACCEPTANCE_STATUS_REJECTED: Acceptance.REJECTED,
}


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    description: str


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """The gateway's answer to one completion. ``attempts`` > 1 when it was resent after the
    stream broke (the same completion id, so never credited twice)."""

    completion_id: str
    acceptance: Acceptance
    event_id: str = ""
    reason: str = ""
    message: str = ""
    field_problems: tuple[FieldProblem, ...] = ()
    attempts: int = 1

    @classmethod
    def from_response(
        cls, response: issuer_gateway_pb2.StreamCompletionsResponse, attempts: int
    ) -> SubmitOutcome:
        acceptance = _BY_STATUS.get(response.status)
        if acceptance is None:
            raise ValueError(f"unknown acceptance status {response.status}")
        return cls(
            completion_id=response.completion_id,
            acceptance=acceptance,
            event_id=response.event_id,
            reason=response.reason,
            message=response.message,
            field_problems=tuple(
                FieldProblem(v.field, v.description) for v in response.field_violations
            ),
            attempts=attempts,
        )


#: The most learners one BatchGetTranscripts call may name (the server's documented maximum,
#: proto/learnerledger/v1/transcript_query.proto); longer lists are sent in chunks of it.
MAX_LEARNERS_PER_BATCH = 100


class ReadStatus(enum.Enum):
    """What became of one learner of a batch read."""

    OK = "ok"
    #: No consent to this university stands (or the token may not read this learner).
    PERMISSION_DENIED = "permission_denied"
    #: The learner has no entries in the ledger (yet).
    NOT_FOUND = "not_found"
    #: Not an APAAR id (12 digits).
    INVALID = "invalid"
    #: Any other per-learner status (see ``code``).
    ERROR = "error"


_READ_STATUS = {
    grpc.StatusCode.OK: ReadStatus.OK,
    grpc.StatusCode.PERMISSION_DENIED: ReadStatus.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND: ReadStatus.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: ReadStatus.INVALID,
}
_CODES = {code.value[0]: code for code in grpc.StatusCode}


@dataclass(frozen=True, slots=True)
class LearnerTranscript:
    """One learner of a batch read: the transcript, or why it was refused (``code`` with the
    server's ErrorInfo ``reason``, ``message`` and field problems)."""

    learner_id: str
    status: ReadStatus
    transcript: transcript_query_pb2.Transcript | None = None
    code: grpc.StatusCode = grpc.StatusCode.OK
    reason: str = ""
    message: str = ""
    field_problems: tuple[FieldProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is ReadStatus.OK

    @classmethod
    def from_result(cls, result: transcript_query_pb2.TranscriptResult) -> LearnerTranscript:
        which = result.WhichOneof("result")
        if which == "transcript":
            return cls(result.learner_id, ReadStatus.OK, transcript=result.transcript)
        if which != "error":
            raise ValueError(f"learner {result.learner_id!r}: neither a transcript nor an error")
        # LearnerError is wire-compatible with google.rpc.Status (transcript_query.proto).
        status = status_pb2.Status.FromString(result.error.SerializeToString())
        code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        reason = ""
        problems: list[FieldProblem] = []
        for holder in status.details:
            if holder.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                holder.Unpack(info)
                reason = info.reason
            elif holder.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                holder.Unpack(bad)
                problems += [FieldProblem(v.field, v.description) for v in bad.field_violations]
        return cls(
            learner_id=result.learner_id,
            status=_READ_STATUS.get(code, ReadStatus.ERROR),
            code=code,
            reason=reason,
            message=status.message,
            field_problems=tuple(problems),
        )
