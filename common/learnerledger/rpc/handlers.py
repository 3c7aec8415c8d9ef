"""What our server interceptors share: wrapping a method's behavior, whatever its kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

#: Wraps one behavior (a unary or streaming handler function) of the named method.
Wrap = Callable[[Callable[..., Any], str], Callable[..., Any]]


def wrap_behavior(
    handler: grpc.RpcMethodHandler,
    method: str,
    *,
    unary_unary: Wrap,
    unary_stream: Wrap,
    stream_unary: Wrap,
    stream_stream: Wrap,
) -> grpc.RpcMethodHandler:
    """``handler`` with its behavior wrapped by the wrapper of its kind."""
    if handler.unary_unary is not None:
        return handler._replace(unary_unary=unary_unary(handler.unary_unary, method))
    if handler.unary_stream is not None:
        return handler._replace(unary_stream=unary_stream(handler.unary_stream, method))
    if handler.stream_unary is not None:
        return handler._replace(stream_unary=stream_unary(handler.stream_unary, method))
    if handler.stream_stream is not None:
        return handler._replace(stream_stream=stream_stream(handler.stream_stream, method))
    return handler


class WrappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A server interceptor that replaces each method's handler with :meth:`wrap` of it."""

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return self.wrap(handler, str(handler_call_details.method))


async def responses(result: Any) -> AsyncIterator[Any]:
    """The responses of a server-streaming behavior's ``result``."""
    if hasattr(result, "__aiter__"):
        async for response in result:
            yield response
    else:  # a handler that writes with context.write() and returns
        await result
