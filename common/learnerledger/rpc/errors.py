"""gRPC errors with ``google.rpc`` details (AIP-193), built with grpcio-status.

A handler raises :class:`RpcFailure` (or calls :func:`abort`); the status code, message and
details travel to the client as the standard ``grpc-status-details-bin`` trailer, which
``grpc_status.rpc_status.from_call`` (or any gRPC client library) decodes.

Every ErrorInfo carries the domain :data:`DOMAIN` and an UPPER_SNAKE_CASE reason from
:class:`Reason`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

#: The ErrorInfo domain of every Learner Ledger service.
DOMAIN = "learnerledger.dev"


class Reason(enum.StrEnum):
    """Every ErrorInfo reason the services send (:class:`RpcFailure` takes no other). The
    values are the contract: clients match them, so a value never changes."""

    # requests and callers
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    WRONG_PRINCIPAL_KIND = "WRONG_PRINCIPAL_KIND"
    NOT_OWN_RECORD = "NOT_OWN_RECORD"
    RATE_LIMITED = "RATE_LIMITED"
    # dependencies
    KAFKA_UNAVAILABLE = "KAFKA_UNAVAILABLE"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    IDENTITY_PROVIDER_UNAVAILABLE = "IDENTITY_PROVIDER_UNAVAILABLE"
    # completions (the gateway)
    COMPLETION_NOT_FOUND = "COMPLETION_NOT_FOUND"
    COMPLETION_CONFLICT = "COMPLETION_CONFLICT"
    FOREIGN_ISSUER = "FOREIGN_ISSUER"
    # the catalog: <what>_ALREADY_EXISTS and <what>_NOT_FOUND
    ISSUER_ALREADY_EXISTS = "ISSUER_ALREADY_EXISTS"
    UNIVERSITY_ALREADY_EXISTS = "UNIVERSITY_ALREADY_EXISTS"
    COURSE_ALREADY_EXISTS = "COURSE_ALREADY_EXISTS"
    PROGRAMME_ALREADY_EXISTS = "PROGRAMME_ALREADY_EXISTS"
    ACTIVE_TOKEN_ALREADY_EXISTS = "ACTIVE_TOKEN_ALREADY_EXISTS"
    ISSUER_NOT_FOUND = "ISSUER_NOT_FOUND"
    UNIVERSITY_NOT_FOUND = "UNIVERSITY_NOT_FOUND"
    COURSE_NOT_FOUND = "COURSE_NOT_FOUND"
    PROGRAMME_NOT_FOUND = "PROGRAMME_NOT_FOUND"
    ACTIVE_TOKEN_NOT_FOUND = "ACTIVE_TOKEN_NOT_FOUND"
    # consent, replays (the ledger's admin API)
    REQUEST_ID_CONFLICT = "REQUEST_ID_CONFLICT"
    REPLAY_CONFLICT = "REPLAY_CONFLICT"
    REPLAY_NOT_FOUND = "REPLAY_NOT_FOUND"
    # redemptions
    FOREIGN_UNIVERSITY = "FOREIGN_UNIVERSITY"
    NO_CONSENT = "NO_CONSENT"
    REDEMPTION_NOT_FOUND = "REDEMPTION_NOT_FOUND"
    REDEMPTION_ID_CONFLICT = "REDEMPTION_ID_CONFLICT"
    # reads (the query service)
    CONSENT_NOT_GRANTED = "CONSENT_NOT_GRANTED"
    LEARNER_NOT_FOUND = "LEARNER_NOT_FOUND"
    POSITION_NOT_APPLIED = "POSITION_NOT_APPLIED"
    ENTRY_NOT_FOUND = "ENTRY_NOT_FOUND"
    TREE_HEAD_NOT_FOUND = "TREE_HEAD_NOT_FOUND"
    TREE_TOO_SMALL = "TREE_TOO_SMALL"
    CREDENTIALS_NOT_CONFIGURED = "CREDENTIALS_NOT_CONFIGURED"
    NOT_A_CREDIT = "NOT_A_CREDIT"
    CREDIT_REVOKED = "CREDIT_REVOKED"
    CREDIT_UNREADABLE = "CREDIT_UNREADABLE"


@dataclass(frozen=True, slots=True)
class Violation:
    """One invalid field: ``field`` is a dotted path relative to the request."""

    field: str
    description: str


def bad_request(violations: Iterable[Violation]) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations
        ]
    )


def error_info(
    reason: Reason, metadata: Mapping[str, str] | None = None
) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(
        reason=str(reason), domain=DOMAIN, metadata=dict(metadata or {})
    )


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    seconds = max(0.0, seconds)
    whole = math.floor(seconds)
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
    )


def status_message(
    code: grpc.StatusCode, message: str, details: Iterable[Message] = ()
) -> status_pb2.Status:
    """The ``google.rpc.Status`` of ``code`` with ``details`` packed."""
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=_code_number(code), message=message, details=packed)


def rich_status(
    code: grpc.StatusCode, message: str, details: Iterable[Message] = ()
) -> grpc.Status:
    """A ``grpc.Status`` whose trailer carries ``google.rpc.Status`` with ``details``."""
    return rpc_status.to_status(status_message(code, message, details))


def _code_number(code: grpc.StatusCode) -> int:
    number = code.value[0]
    assert isinstance(number, int)
    assert code_pb2.Code.Name(number)  # every grpc.StatusCode is a google.rpc.Code
    return number


@dataclass
class RpcFailure(Exception):
    """Raised by handler code; the server turns it into a rich gRPC status."""

    code: grpc.StatusCode
    message: str
    reason: Reason | None = None
    violations: list[Violation] = field(default_factory=list)
    retry_after_s: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, f"{self.code.name}: {self.message}")

    def details(self) -> list[Message]:
        details: list[Message] = []
        if self.reason is not None:
            details.append(error_info(self.reason, self.metadata))
        if self.violations:
            details.append(bad_request(self.violations))
        if self.retry_after_s is not None:
            details.append(retry_info(self.retry_after_s))
        return details

    def status(self) -> grpc.Status:
        return rich_status(self.code, self.message, self.details())

    def status_message(self) -> status_pb2.Status:
        """The ``google.rpc.Status`` this failure is sent as (for a per-item error inside a
        response, as in a batch)."""
        return status_message(self.code, self.message, self.details())


def invalid_argument(violations: list[Violation], message: str | None = None) -> RpcFailure:
    return RpcFailure(
        grpc.StatusCode.INVALID_ARGUMENT,
        message
        or f"{len(violations)} invalid field(s): "
        + "; ".join(f"{v.field}: {v.description}" for v in violations[:5]),
        reason=Reason.INVALID_ARGUMENT,
        violations=violations,
    )


def unavailable(message: str, *, reason: Reason, retry_after_s: float = 1.0) -> RpcFailure:
    return RpcFailure(
        grpc.StatusCode.UNAVAILABLE, message, reason=reason, retry_after_s=retry_after_s
    )


async def abort(context: grpc.aio.ServicerContext[Any, Any], failure: RpcFailure) -> NoReturn:
    """End the call with ``failure`` (raises, as ``context.abort_with_status`` does)."""
    await context.abort_with_status(failure.status())
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def decode_details(trailing_metadata: Any) -> list[Message]:
    """Client side: unpack the rich details of a failed call's trailing metadata.

    Returns BadRequest, ErrorInfo and RetryInfo messages (others are skipped).
    """
    known: list[type[Message]] = [
        error_details_pb2.BadRequest,
        error_details_pb2.ErrorInfo,
        error_details_pb2.RetryInfo,
    ]
    out: list[Message] = []
    for key, value in trailing_metadata or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for holder in status.details:
            for cls in known:
                if holder.Is(cls.DESCRIPTOR):
                    message = cls()
                    holder.Unpack(message)
                    out.append(message)
    return out
