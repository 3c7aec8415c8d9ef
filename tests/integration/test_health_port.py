"""The plaintext, health-only port that Kubernetes probes use beside a (TLS) API port."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from learnerledger.rpc.server import server_options, start_server
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


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


async def test_the_server_ends_a_connection_at_its_maximum_age() -> None:
    """MAX_CONNECTION_AGE: the server sends GOAWAY once a connection is old enough, so the
    client's next call opens a new connection (behind a TCP load balancer: maybe elsewhere)."""
    running = await start_server(
        register=lambda server: None,
        service_names=[],
        bind="127.0.0.1",
        port=0,
        max_connection_age_s=0.5,
        max_connection_age_grace_s=0.5,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert channel.get_state() is grpc.ChannelConnectivity.READY
            # GOAWAY moves the channel out of READY; without a maximum age it stays there.
            async with asyncio.timeout(15):
                await channel.wait_for_state_change(grpc.ChannelConnectivity.READY)
            assert channel.get_state() is not grpc.ChannelConnectivity.READY
    finally:
        await running.stop(0)


def test_server_options_carry_the_maximum_connection_age() -> None:
    options = dict(server_options(1024, max_connection_age_s=600, max_connection_age_grace_s=60))
    assert options["grpc.max_connection_age_ms"] == 600_000
    assert options["grpc.max_connection_age_grace_ms"] == 60_000
