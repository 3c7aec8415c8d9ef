"""What became of one submitted completion, as plain data."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from learnerledger.v1 import issuer_gateway_pb2


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
