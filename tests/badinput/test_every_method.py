"""Hostile requests for EVERY method of the three services, built from their descriptors.

For each method of IssuerGatewayService, LedgerAdminService and TranscriptQueryService (so a new
method or field is covered without editing this file), each field of its request message is
walked, nested messages included, and set to hostile values: NUL and control characters and
oversized strings, extreme integers, non-finite floats, unknown enum numbers, Timestamps at the
protobuf minimum and maximum and beyond them. Each request is sent to the real running service
with a valid token of the right kind; raw undecodable bytes and invalid UTF-8 are sent with a raw
channel method, with and without a token.

No answer may be UNKNOWN or INTERNAL (a handler that did not expect the input). A NUL anywhere in
a unary request is INVALID_ARGUMENT with a field violation naming that field; undecodable bytes
are INVALID_ARGUMENT before authentication. The services' logs during the run are one JSON object
per line, with no traceback: a client's error is not a server bug.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as pd
from google.protobuf import message_factory
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from learnerledger.observability import stdlib_formatter
from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import learner_consent_pb2, redemption_pb2
from tests.support.authorization import ADMIN, DIANA, GATEWAY, QUERY, Stack, bearer, invoke
from tests.support.gateway import completion as wire_completion
from tests.support.hostile import assert_one_json_object_per_line, json_logs
from tests.support.hostile import raw_field as raw_field

pytestmark = pytest.mark.integration

FD = pd.FieldDescriptor
CALL_TIMEOUT_S = 3.0
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
TIMESTAMP = "google.protobuf.Timestamp"
UNDECODABLE = b"\xff\xff\xff\xff"  # a field tag whose varint never ends


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


TIMESTAMPS: list[tuple[str, Timestamp]] = [
    ("min", _stamp(datetime(1, 1, 1, tzinfo=UTC))),
    ("max", Timestamp(seconds=253_402_300_799, nanos=999_999_999)),
    ("before-min", Timestamp(seconds=-62_135_596_801)),
    ("after-max", Timestamp(seconds=253_402_300_800)),
    ("huge", Timestamp(seconds=2**62)),
    ("negative-nanos", Timestamp(seconds=1_767_225_600, nanos=-1)),
    ("nanos-too-big", Timestamp(seconds=1_767_225_600, nanos=2_000_000_000)),
]
INT32 = {FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32}
INT64 = {FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64}


def hostile_values(field: pd.FieldDescriptor) -> list[tuple[str, Any]]:
    """(label, value) pairs for a scalar field of ``field``'s type."""
    match field.type:
        case FD.TYPE_STRING:
            return [
                ("nul", "a\x00b"),
                ("control", "\x01\x1b[31m\x7f"),
                ("forged-log-line", '\n{"level":"error","event":"forged"}'),
                ("oversized", "x" * 40_000),
            ]
        case FD.TYPE_BYTES:
            return [("binary", b"\x00\xff" * 8), ("oversized", b"x" * 40_000)]
        case t if t in INT32:
            return [("min", -(2**31)), ("minus-one", -1), ("max", 2**31 - 1)]
        case t if t in INT64:
            return [("min", -(2**63)), ("minus-one", -1), ("max", 2**63 - 1)]
        case FD.TYPE_UINT32 | FD.TYPE_FIXED32:
            return [("max", 2**32 - 1)]
        case FD.TYPE_UINT64 | FD.TYPE_FIXED64:
            return [("max", 2**64 - 1)]
        case FD.TYPE_DOUBLE | FD.TYPE_FLOAT:
            return [("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf), ("neg", -1.0)]
        case FD.TYPE_BOOL:
            return [("true", True)]
        case FD.TYPE_ENUM:
            return [("unknown-number", 999), ("negative", -1)]
    raise AssertionError(f"no hostile values for {field.full_name}")


Mutation = tuple[str, str, Callable[[Message], None]]


def _set(path: list[pd.FieldDescriptor], value: Any) -> Callable[[Message], None]:
    def apply(message: Message) -> None:
        target = message
        for step in path[:-1]:
            holder = getattr(target, step.name)
            if step.is_repeated:
                holder = holder[0] if len(holder) else holder.add()
            target = holder
        last = path[-1]
        if last.is_repeated:
            items = getattr(target, last.name)
            if isinstance(value, Message):
                items.add().CopyFrom(value)
            else:
                items.append(value)
        elif isinstance(value, Message):
            getattr(target, last.name).CopyFrom(value)
        else:
            setattr(target, last.name, value)

    return apply


def mutations(
    descriptor: pd.Descriptor, parents: tuple[pd.FieldDescriptor, ...] = ()
) -> Iterator[Mutation]:
    """Every (field path, label, mutation) of a request message type, nested fields included."""
    for field in descriptor.fields:
        path = [*parents, field]
        dotted = ".".join(f.name for f in path)
        nested = field.message_type
        if nested is not None and nested.full_name == TIMESTAMP:
            for label, stamp in TIMESTAMPS:
                yield dotted, label, _set(path, stamp)
        elif nested is not None:
            if not nested.GetOptions().map_entry and len(parents) < 3:
                yield from mutations(nested, tuple(path))
        else:
            for label, value in hostile_values(field):
                yield dotted, label, _set(path, value)


def base_request(method: pd.MethodDescriptor) -> Message:
    """A request that gets past the first checks, so that each hostile value goes deep."""
    request = message_factory.GetMessageClass(method.input_type)()
    plain = {"learner_id": DIANA, "sequence": 1, "completion_id": "az-1"}
    for name, value in plain.items():
        if name in request.DESCRIPTOR.fields_by_name:
            setattr(request, name, value)
    if "completion" in request.DESCRIPTOR.fields_by_name:
        request.completion.CopyFrom(wire_completion("hostile", learner_id=DIANA))
    return request


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    return [
        v.field
        for d in decode_details(error.trailing_metadata())
        if isinstance(d, error_details_pb2.BadRequest)
        for v in d.field_violations
    ]


def first_string_field(descriptor: pd.Descriptor) -> pd.FieldDescriptor | None:
    return next((f for f in descriptor.fields if f.type == FD.TYPE_STRING), None)


REDEMPTION = redemption_pb2.DESCRIPTOR.services_by_name["RedemptionService"]
LEARNER_CONSENT = learner_consent_pb2.DESCRIPTOR.services_by_name["LearnerConsentService"]
SERVICES = (
    ("gateway", GATEWAY, "swayam"),
    ("admin", ADMIN, "admin"),
    ("query", QUERY, "du"),
    ("admin", REDEMPTION, "du"),  # served by the ledger process, on the admin API's port
    ("admin", LEARNER_CONSENT, "diana"),  # learners' own consent (an ID token), same port
    ("query", QUERY, "diana"),  # a learner reading their own record
)


async def test_no_hostile_request_is_answered_unknown_or_internal(services: Stack) -> None:
    sink_handler = logging.StreamHandler()
    with json_logs() as sink:
        sink_handler.setStream(sink)
        sink_handler.setFormatter(stdlib_formatter())
        logging.getLogger().addHandler(sink_handler)
        try:
            calls, broken, wrong = 0, [], []
            for channel_name, service, who in SERVICES:
                channel = getattr(services, channel_name)
                token = bearer(services.tokens[who])
                for method in service.methods:
                    for path, label, mutate in mutations(method.input_type):
                        request = base_request(method)
                        mutate(request)
                        failed = await invoke(
                            channel, service, method, request, token, timeout=CALL_TIMEOUT_S
                        )
                        calls += 1
                        code = grpc.StatusCode.OK if failed is None else failed.code()
                        if code in NEVER:
                            broken.append((method.full_name, path, label, code, failed.details()))
                        if label == "nul" and not method.client_streaming:
                            named = [] if failed is None else field_violations(failed)
                            if code is not grpc.StatusCode.INVALID_ARGUMENT or not any(
                                v.split("[")[0] == path for v in named
                            ):
                                wrong.append((method.full_name, path, code, named))
        finally:
            logging.getLogger().removeHandler(sink_handler)
        events = assert_one_json_object_per_line(sink.getvalue())
    print(f"{calls} hostile calls")
    assert calls > 200  # every field of every request, several values each
    assert broken == []
    assert wrong == []
    assert [e for e in events if "exception" in e] == []


async def test_undecodable_bytes_are_invalid_argument_on_every_method(services: Stack) -> None:
    """Raw bytes that are no protobuf, and invalid UTF-8 in a string field, with and without a
    token: INVALID_ARGUMENT (a stream method authenticates before it reads, so without a token
    it may answer UNAUTHENTICATED first)."""
    sink_handler = logging.StreamHandler()
    with json_logs() as sink:
        sink_handler.setStream(sink)
        sink_handler.setFormatter(stdlib_formatter())
        logging.getLogger().addHandler(sink_handler)
        try:
            answers = []
            for channel_name, service, who in SERVICES:
                channel = getattr(services, channel_name)
                for method in service.methods:
                    payloads = [("no-protobuf", UNDECODABLE)]
                    text = first_string_field(method.input_type)
                    if text is not None:
                        payloads.append(("invalid-utf8", raw_field(text.number, b"bad\xff\xfe")))
                    for label, raw in payloads:
                        for metadata in (bearer(services.tokens[who]), ()):
                            failed = await invoke(
                                channel, service, method, raw, metadata, timeout=CALL_TIMEOUT_S
                            )
                            code = grpc.StatusCode.OK if failed is None else failed.code()
                            allowed = {grpc.StatusCode.INVALID_ARGUMENT}
                            if method.client_streaming and not metadata:
                                allowed.add(grpc.StatusCode.UNAUTHENTICATED)
                            answers.append((method.full_name, label, bool(metadata), code))
                            assert code in allowed, answers[-1]
                            if code is grpc.StatusCode.INVALID_ARGUMENT:
                                assert failed is not None
                                assert field_violations(failed) == ["request"], answers[-1]
                                assert "not a valid protobuf message" in (failed.details() or "")
        finally:
            logging.getLogger().removeHandler(sink_handler)
        events = assert_one_json_object_per_line(sink.getvalue())
    methods = {m.full_name for _, service, _ in SERVICES for m in service.methods}
    assert {a[0] for a in answers} == methods
    assert [e for e in events if "exception" in e] == []
