"""Calls that fail because PostgreSQL is unreachable end UNAVAILABLE, never UNKNOWN.

While PostgreSQL restarts or a connection drops, a handler's query raises a connection error.
Without this interceptor grpc answers such a call UNKNOWN ("Unexpected error"), which tells a
partner or a registrar nothing and is not retryable by convention. With it, every handler of
every service answers UNAVAILABLE with ErrorInfo reason DATABASE_UNAVAILABLE and a RetryInfo,
the same answer a handler gives when it maps the error itself (AIP-193: UNAVAILABLE is the code
clients retry).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import grpc
import structlog

from learnerledger.postgres.errors import DATABASE_UNREACHABLE
from learnerledger.rpc.errors import Reason, RpcFailure, unavailable
from learnerledger.rpc.handlers import WrappingInterceptor, responses, wrap_behavior

log = structlog.get_logger(__name__)

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


def database_unavailable(exc: BaseException) -> RpcFailure:
    return unavailable(
        f"the database is unavailable ({type(exc).__name__}); retry shortly",
        reason=Reason.DATABASE_UNAVAILABLE,
    )


async def _abort(context: Context, method: str, exc: BaseException) -> None:
    log.warning("rpc_database_unavailable", method=method, error=type(exc).__name__)
    await context.abort_with_status(database_unavailable(exc).status())


class DatabaseOutageInterceptor(WrappingInterceptor):
    """Wrap every handler: a DATABASE_UNREACHABLE error becomes UNAVAILABLE."""

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        return wrap_behavior(
            handler,
            method,
            unary_unary=_wrap_unary,
            unary_stream=_wrap_stream,
            stream_unary=_wrap_unary,
            stream_stream=_wrap_stream,
        )


def _wrap_unary(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    async def guarded(request: Any, context: Context) -> Any:
        try:
            return await behavior(request, context)
        except DATABASE_UNREACHABLE as exc:
            await _abort(context, method, exc)
            raise  # pragma: no cover - abort_with_status raises

    return guarded


def _wrap_stream(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    async def guarded(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for response in responses(behavior(request, context)):
                yield response
        except DATABASE_UNREACHABLE as exc:
            await _abort(context, method, exc)

    return guarded
