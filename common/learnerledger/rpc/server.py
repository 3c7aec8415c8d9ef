"""Start an asyncio gRPC server the way every Learner Ledger service does.

Health checking (``grpc.health.v1``: the overall status "" and each named service), server
reflection (so ``grpcurl list`` works) and TLS from files: a certificate and key give server
TLS; adding a client CA bundle requires and verifies client certificates (mutual TLS).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from learnerledger.rpc.database_outage import DatabaseOutageInterceptor
from learnerledger.rpc.requests import RequestCheckInterceptor

_log = structlog.get_logger(__name__)


class TlsConfigError(ValueError):
    """The TLS settings are incomplete or the files cannot be read."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None

    def credentials(self) -> grpc.ServerCredentials | None:
        """None for plaintext; server TLS; or mutual TLS when a client CA is given.

        The files are read again when they change (cert-manager renews a certificate with a
        new key, and Kubernetes swaps the mounted Secret's files in place): every new TLS
        handshake first asks :class:`_ReloadingCertificates` for the current files, so a
        renewed certificate is served without a restart. Connections already open keep the
        certificate they were made with.
        """
        if self.cert_file is None and self.key_file is None:
            if self.client_ca_file is not None:
                raise TlsConfigError("a client CA (mutual TLS) needs a server cert and key too")
            return None
        if self.cert_file is None or self.key_file is None:
            raise TlsConfigError("TLS needs both a certificate file and a key file")
        certificates = _ReloadingCertificates(self.cert_file, self.key_file, self.client_ca_file)
        return grpc.dynamic_ssl_server_credentials(
            certificates.initial(),
            certificates.fetch,
            require_client_authentication=self.client_ca_file is not None,
        )


class _ReloadingCertificates:
    """The certificate configuration of a server, re-read when its files change.

    grpc calls :meth:`fetch` before each new handshake (from its own threads); it returns a new
    configuration when a file's identity (inode, size, modification time) changed, and None to
    keep the current one. A file caught half-written or unreadable keeps the current one too:
    the next handshake tries again.
    """

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None) -> None:
        self._files = (cert_file, key_file, client_ca_file)
        self._lock = threading.Lock()
        self._seen: tuple[tuple[int, int, int], ...] = ()

    def _signature(self) -> tuple[tuple[int, int, int], ...]:
        stats = (path.stat() for path in self._files if path is not None)
        return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        cert_file, key_file, client_ca_file = self._files
        signature = self._signature()
        cert = cert_file.read_bytes()
        key = key_file.read_bytes()
        ca = client_ca_file.read_bytes() if client_ca_file is not None else None
        if not cert.strip() or not key.strip():
            raise OSError("empty certificate or key file (being replaced?)")
        self._seen = signature
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def initial(self) -> grpc.ServerCertificateConfiguration:
        try:
            with self._lock:
                return self._load()
        except OSError as exc:
            raise TlsConfigError(f"cannot read TLS file: {exc}") from exc

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            try:
                if self._signature() == self._seen:
                    return None
                configuration = self._load()
            except OSError as exc:
                _log.warning("tls_reload_failed", error=str(exc))
                return None
        _log.info("tls_certificate_reloaded", cert_file=str(self._files[0]))
        return configuration


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


#: gRPC's MAX_CONNECTION_AGE: after this long a server asks its client (GOAWAY) to reconnect, so
#: that long-lived partner streams spread over new replicas behind a TCP load balancer (which
#: balances connections, not calls). The grace lets calls running on the old connection finish.
DEFAULT_MAX_CONNECTION_AGE_S = 600.0
DEFAULT_MAX_CONNECTION_AGE_GRACE_S = 60.0


def server_options(
    max_message_bytes: int,
    *,
    max_connection_age_s: float = DEFAULT_MAX_CONNECTION_AGE_S,
    max_connection_age_grace_s: float = DEFAULT_MAX_CONNECTION_AGE_GRACE_S,
) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.max_connection_age_ms", round(max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", round(max_connection_age_grace_s * 1000)),
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
    max_connection_age_s: float = DEFAULT_MAX_CONNECTION_AGE_S,
    max_connection_age_grace_s: float = DEFAULT_MAX_CONNECTION_AGE_GRACE_S,
    serving: bool = True,
) -> RunningServer:
    """Build, bind and start a server; ``port`` 0 picks a free port (see ``.port``).

    Health starts SERVING, or with ``serving=False`` NOT_SERVING until ``set_serving(True)``
    (the service runner reports SERVING once every part of the service is up).

    With ``health_port``, the same health status is also served in plaintext on that port and
    nothing else: Kubernetes' gRPC probes cannot use TLS, and the API port may require it.
    ``max_connection_age_s`` bounds a connection's life (``GRPC_MAX_CONNECTION_AGE_S``).

    ``register`` adds the service's servicers; ``service_names`` are their full names
    (``DESCRIPTOR.services_by_name[...].full_name``) for health and reflection. Every handler
    answers UNAVAILABLE when PostgreSQL is unreachable (:class:`DatabaseOutageInterceptor`), and
    every method answers INVALID_ARGUMENT to undecodable request bytes or a NUL in a string field
    before its handler runs (:class:`RequestCheckInterceptor`).
    """
    credentials = (tls or TlsFiles()).credentials()
    server = grpc.aio.server(
        interceptors=[RequestCheckInterceptor(), DatabaseOutageInterceptor(), *interceptors],
        options=server_options(
            max_message_bytes,
            max_connection_age_s=max_connection_age_s,
            max_connection_age_grace_s=max_connection_age_grace_s,
        ),
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
    await running.set_serving(serving)
    return running


async def start_health_server(*, bind: str, port: int, serving: bool = False) -> RunningServer:
    """A plaintext server with the health service only (a worker without an API: the
    projector), NOT_SERVING until ``set_serving(True)`` unless ``serving``."""
    server = grpc.aio.server()
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{bind}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the health port {bind}:{port}")
    await server.start()
    running = RunningServer(server, bound, health_servicer, ())
    await running.set_serving(serving)
    return running
