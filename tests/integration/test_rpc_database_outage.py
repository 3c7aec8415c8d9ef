"""Every service's gRPC server answers UNAVAILABLE (not UNKNOWN) when PostgreSQL is unreachable.

A real grpc.aio server built by ``start_server`` with handlers that fail the way asyncpg does
while PostgreSQL restarts; the client sees UNAVAILABLE with ErrorInfo DATABASE_UNAVAILABLE and a
RetryInfo. Other errors keep their meaning (UNKNOWN for a bug).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2

from learnerledger.rpc.errors import DOMAIN, Reason, decode_details
from learnerledger.rpc.server import RunningServer, start_server


async def refused(request: bytes, context: Any) -> bytes:
    raise ConnectionRefusedError(111, "Connect call failed")


async def shutting_down(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"first"
    raise asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator")


async def buggy(request: bytes, context: Any) -> bytes:
    raise KeyError("a bug, not an outage")


def register(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Outage",
                {
                    "Refused": grpc.unary_unary_rpc_method_handler(refused),
                    "ShuttingDown": grpc.unary_stream_rpc_method_handler(shutting_down),
                    "Buggy": grpc.unary_unary_rpc_method_handler(buggy),
                },
            ),
        )
    )


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    running = await start_server(
        register=register, service_names=["test.Outage"], bind="127.0.0.1", port=0
    )
    try:
        yield running
    finally:
        await running.stop(0)


def _reason(error: grpc.aio.AioRpcError) -> tuple[str, str, bool]:
    details = decode_details(error.trailing_metadata())
    info = next(d for d in details if isinstance(d, error_details_pb2.ErrorInfo))
    retry = any(isinstance(d, error_details_pb2.RetryInfo) for d in details)
    return info.reason, info.domain, retry


async def test_unary_database_error_is_unavailable(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/test.Outage/Refused")(b"x", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "database is unavailable" in (caught.value.details() or "")
    assert _reason(caught.value) == (Reason.DATABASE_UNAVAILABLE, DOMAIN, True)


async def test_stream_ends_unavailable_after_what_it_sent(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_stream("/test.Outage/ShuttingDown")(b"x", timeout=5)
        assert await call.read() == b"first"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _reason(caught.value)[0] == Reason.DATABASE_UNAVAILABLE


async def test_other_errors_are_not_disguised_as_outages(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/test.Outage/Buggy")(b"x", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
