"""Start an asyncio gRPC server the way every Learner Ledger service does.

Health checking (``grpc.health.v1``: the overall status "" and each named service), server
reflection (so ``grpcurl list`` works) and TLS from files: a certificate and key give server
TLS; adding a client CA bundle requires and verifies client certificates (mutual TLS).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from learnerledger.rpc.database_outage import DatabaseOutageInterceptor
from learnerledger.rpc.requests import RequestCheckInterceptor


class TlsConfigError(ValueError):
    """The TLS settings are incomplete or the files cannot be read."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None

    def credentials(self) -> grpc.ServerCredentials | None:
        """None for plaintext; server TLS; or mutual TLS when a client CA is given."""
        if self.cert_file is None and self.key_file is None:
            if self.client_ca_file is not None:
                raise TlsConfigError("a client CA (mutual TLS) needs a server cert and key too")
            return None
        if self.cert_file is None or self.key_file is None:
            raise TlsConfigError("TLS needs both a certificate file and a key file")
        try:
            cert = self.cert_file.read_bytes()
            key = self.key_file.read_bytes()
            ca = self.client_ca_file.read_bytes() if self.client_ca_file else None
        except OSError as exc:
            raise TlsConfigError(f"cannot read TLS file: {exc}") from exc
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]
    health_server: grpc.aio.Server | None = None
    """Plaintext, health-only server for kubelet probes (they cannot speak TLS)."""

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, refuse new calls, let running calls finish within ``grace_s``."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        if self.health_server is not None:
            await self.health_server.stop(0)


def server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]


async def start_server(
    *,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    bind: str,
    port: int,
    tls: TlsFiles | None = None,
    max_message_bytes: int = 4 * 1024 * 1024,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    health_port: int | None = None,
) -> RunningServer:
    """Build, bind and start a server; ``port`` 0 picks a free port (see ``.port``).

    With ``health_port``, the same health status is also served in plaintext on that port and
    nothing else: Kubernetes' gRPC probes cannot use TLS, and the API port may require it.

    ``register`` adds the service's servicers; ``service_names`` are their full names
    (``DESCRIPTOR.services_by_name[...].full_name``) for health and reflection. Every handler
    answers UNAVAILABLE when PostgreSQL is unreachable (:class:`DatabaseOutageInterceptor`), and
    every method answers INVALID_ARGUMENT to undecodable request bytes or a NUL in a string field
    before its handler runs (:class:`RequestCheckInterceptor`).
    """
    credentials = (tls or TlsFiles()).credentials()
    server = grpc.aio.server(
        interceptors=[RequestCheckInterceptor(), DatabaseOutageInterceptor(), *interceptors],
        options=server_options(max_message_bytes),
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{bind}:{port}"
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    if bound == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    await server.start()
    health_only = None
    if health_port is not None:
        health_only = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_only)
        if health_only.add_insecure_port(f"{bind}:{health_port}") == 0:
            raise OSError(f"cannot bind the health port {bind}:{health_port}")
        await health_only.start()
    running = RunningServer(server, bound, health_servicer, tuple(service_names), health_only)
    await running.set_serving(True)
    return running
