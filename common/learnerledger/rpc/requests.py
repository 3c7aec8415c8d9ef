"""Every request of every service is checked before its handler runs.

Two failures belong to the request itself, whatever the method, and so are answered here once
for all of them rather than in each handler:

- **Undecodable bytes** (not a protobuf of the method's request type, invalid UTF-8 in a string
  field). Left to grpc, the deserializer's ``DecodeError`` becomes ``UNKNOWN`` with an internal
  class name and a multi-line traceback in the logs. :class:`RequestCheckInterceptor` wraps the
  ``request_deserializer`` of every method so that a failure yields an
  :class:`UndecodableRequest` marker, and the wrapped handler answers ``INVALID_ARGUMENT``
  (ErrorInfo ``INVALID_ARGUMENT``, a BadRequest naming the whole request) before authentication
  or any other work. In a client stream the first undecodable message ends the stream the same
  way.
- **A NUL character in any string field** (``\\u0000``): no PostgreSQL text column can hold it,
  so a query or an insert with it fails deep in the driver. A unary request (client-streamed
  items are the handler's to answer one by one) with a NUL anywhere, nested and repeated fields
  included, is answered ``INVALID_ARGUMENT`` with one field violation per string, by its path.

Both are logged as one structured line with the method, never the request's bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
import structlog
from google.protobuf import descriptor as pd
from google.protobuf.message import DecodeError, Message

from learnerledger.rpc.errors import RpcFailure, Violation, invalid_argument
from learnerledger.rpc.handlers import WrappingInterceptor, responses, wrap_behavior

log = structlog.get_logger(__name__)

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

#: The field path a BadRequest uses for "the request as a whole".
WHOLE_REQUEST = "request"


@dataclass(frozen=True, slots=True)
class UndecodableRequest:
    """What a wrapped deserializer returns instead of raising: why the bytes did not decode."""

    error: str


def undecodable(method: str, found: UndecodableRequest) -> RpcFailure:
    return invalid_argument(
        [Violation(WHOLE_REQUEST, f"not a valid {method} request message: {found.error}")],
        message=f"the request bytes are not a valid protobuf message for {method}",
    )


def nul_violations(message: Message, prefix: str = "") -> list[Violation]:
    """One violation per string field (at any depth) that holds a NUL character."""
    out: list[Violation] = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        repeated = field.is_repeated
        if field.type == pd.FieldDescriptor.TYPE_STRING:
            values = list(value) if repeated else [value]
            for n, text in enumerate(values):
                if "\x00" in text:
                    where = f"{path}[{n}]" if repeated else path
                    out.append(Violation(where, "must not contain a NUL character"))
        elif field.type == pd.FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    if isinstance(key, str) and "\x00" in key:
                        out.append(Violation(f"{path}", "a key must not contain a NUL character"))
                    if isinstance(item, str) and "\x00" in item:
                        out.append(Violation(f"{path}[{key!r}]", "must not contain a NUL"))
                    elif isinstance(item, Message):
                        out.extend(nul_violations(item, f"{path}[{key!r}]."))
            elif repeated:
                for n, item in enumerate(value):
                    out.extend(nul_violations(item, f"{path}[{n}]."))
            else:
                out.extend(nul_violations(value, f"{path}."))
    return out


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except (DecodeError, UnicodeDecodeError, ValueError) as exc:
            return UndecodableRequest(str(exc) or type(exc).__name__)

    return deserialize


async def _refuse(context: Context, method: str, failure: RpcFailure, event: str) -> None:
    log.info(event, method=method, violations=[v.field for v in failure.violations])
    await context.abort_with_status(failure.status())


def _check(request: Any, method: str) -> tuple[RpcFailure, str] | None:
    if isinstance(request, UndecodableRequest):
        return undecodable(method, request), "rpc_request_undecodable"
    if isinstance(request, Message):
        violations = nul_violations(request)
        if violations:
            return invalid_argument(violations), "rpc_request_invalid_string"
    return None


def _wrap_unary_request(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    async def checked(request: Any, context: Context) -> Any:
        refused = _check(request, method)
        if refused is not None:
            await _refuse(context, method, *refused)
        return await behavior(request, context)

    return checked


def _wrap_unary_request_stream(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    async def checked(request: Any, context: Context) -> AsyncIterator[Any]:
        refused = _check(request, method)
        if refused is not None:
            await _refuse(context, method, *refused)
        async for response in responses(behavior(request, context)):
            yield response

    return checked


def _decoded(requests: AsyncIterator[Any], context: Context, method: str) -> AsyncIterator[Any]:
    async def items() -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, UndecodableRequest):
                await _refuse(
                    context, method, undecodable(method, request), "rpc_request_undecodable"
                )
            yield request

    return items()


def _wrap_stream_unary(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    async def checked(requests: AsyncIterator[Any], context: Context) -> Any:
        return await behavior(_decoded(requests, context, method), context)

    return checked


def _wrap_stream_stream(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    # An async generator function, as grpc.aio requires of a streaming handler it awaits itself.
    async def checked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        async for response in responses(behavior(_decoded(requests, context, method), context)):
            yield response

    return checked


class RequestCheckInterceptor(WrappingInterceptor):
    """Undecodable bytes and NUL characters: INVALID_ARGUMENT on every method (module doc)."""

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        return wrap_behavior(
            handler._replace(request_deserializer=_lenient(handler.request_deserializer)),
            method,
            unary_unary=_wrap_unary_request,
            unary_stream=_wrap_unary_request_stream,
            stream_unary=_wrap_stream_unary,
            stream_stream=_wrap_stream_stream,
        )
