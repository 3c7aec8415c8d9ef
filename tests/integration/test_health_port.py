"""The plaintext, health-only port that Kubernetes probes use beside a (TLS) API port."""

from __future__ import annotations

import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from learnerledger.rpc.server import start_server

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_health_port_mirrors_the_server_status_and_serves_nothing_else() -> None:
    health_port = free_port()
    running = await start_server(
        register=lambda server: None,
        service_names=["learnerledger.v1.Example"],
        bind="127.0.0.1",
        port=0,
        health_port=health_port,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            await running.set_serving(False)
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
            # Reflection (and every API) lives on the API port only.
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await channel.unary_unary(
                    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
                )(b"", timeout=5)
            assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await running.stop(grace_s=0)
