"""Run the issuer gateway: ``ledgerctl serve gateway`` calls :func:`main`.

Its parts (:class:`GatewayParts`) run under the shared service runner
(``learnerledger.runtime.lifecycle``). Shutdown (SIGTERM/SIGINT or ``stop``): health goes
NOT_SERVING, the server refuses new calls and lets running ones finish for ``shutdown_grace_s``,
in-flight sends are awaited, then the producer is flushed and stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import structlog

from learnerledger.gateway.server import IssuerGateway
from learnerledger.gateway.settings import GatewaySettings
from learnerledger.kafka.producer import DurableProducer, durable_producer, started
from learnerledger.kafka.topics import ensure_topics, topic_specs
from learnerledger.postgres.pool import create_pool
from learnerledger.rpc.auth import BearerAuthenticator, pool_lookup
from learnerledger.rpc.learner_tokens import verifier_from_settings
from learnerledger.rpc.server import RunningServer, TlsFiles, start_server
from learnerledger.runtime import (
    GrpcServer,
    Metrics,
    Part,
    Resource,
    ServiceRunner,
    Step,
    run_parts,
    run_service,
)
from learnerledger.v1 import issuer_gateway_pb2, issuer_gateway_pb2_grpc

log = structlog.get_logger("learnerledger.gateway")

SERVICE_NAME = issuer_gateway_pb2.DESCRIPTOR.services_by_name["IssuerGatewayService"].full_name


@dataclass
class RunningGateway:
    server: RunningServer
    servicer: IssuerGateway
    producer: DurableProducer
    pool: asyncpg.Pool

    @property
    def port(self) -> int:
        return self.server.port


class GatewayParts:
    """The gateway's parts in start order; stopped in reverse: the API server (NOT_SERVING,
    running calls finish), in-flight sends, the producer (flushed), the pool."""

    def __init__(self, settings: GatewaySettings) -> None:
        grace = settings.shutdown_grace_s
        self.settings = settings
        self.pool = Resource(
            "pool",
            lambda: create_pool(settings.database_url, role=settings.database_role, max_size=8),
            lambda pool: pool.close(),
        )
        self.producer = Resource(
            "producer", self._start_producer, lambda producer: _flush_and_stop(producer, grace)
        )
        self.servicer = Resource("in-flight sends", self._servicer, lambda s: _idle(s, grace))
        self.api = GrpcServer("api", self._start_api)
        self.parts: list[Part] = [
            Metrics(settings.metrics_port),
            Step("topics", self._ensure_topics),
            self.pool,
            self.producer,
            self.servicer,
            self.api,
            Step("announce", self._announce),
        ]

    async def _ensure_topics(self) -> None:
        await ensure_topics(self.settings.kafka_bootstrap_servers, topic_specs(self.settings))

    async def _start_producer(self) -> DurableProducer:
        return await started(
            durable_producer(
                self.settings.kafka_bootstrap_servers,
                client_id="issuer-gateway",
                request_timeout_ms=max(1000, int(self.settings.send_timeout_s * 1000)),
            )
        )

    async def _servicer(self) -> IssuerGateway:
        settings, pool = self.settings, self.pool.value
        return IssuerGateway(
            settings,
            pool=pool,
            producer=self.producer.value,
            authenticator=BearerAuthenticator(
                pool_lookup(pool),
                ttl_s=settings.auth_cache_s,
                learner_tokens=verifier_from_settings(settings),
            ),
        )

    async def _start_api(self) -> RunningServer:
        settings, servicer = self.settings, self.servicer.value
        return await start_server(
            register=lambda s: issuer_gateway_pb2_grpc.add_IssuerGatewayServiceServicer_to_server(
                servicer, s
            ),
            service_names=[SERVICE_NAME],
            bind=settings.grpc_bind,
            port=settings.grpc_port,
            tls=TlsFiles(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
            ),
            max_message_bytes=settings.max_message_bytes,
            max_connection_age_s=settings.grpc_max_connection_age_s,
            max_connection_age_grace_s=settings.grpc_max_connection_age_grace_s,
            health_port=settings.health_port,
            serving=False,
        )

    async def _announce(self) -> None:
        log.info("gateway_started", port=self.api.port, bind=self.settings.grpc_bind)

    def running(self) -> RunningGateway:
        return RunningGateway(
            self.api.server, self.servicer.value, self.producer.value, self.pool.value
        )


async def _idle(servicer: IssuerGateway, grace_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(servicer.wait_idle(), timeout=grace_s)


async def _flush_and_stop(producer: DurableProducer, grace_s: float) -> None:
    with contextlib.suppress(Exception):  # the sends it could not flush were never acked
        await asyncio.wait_for(producer.flush(), timeout=grace_s)
    await producer.stop()


@contextlib.asynccontextmanager
async def gateway(settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """A started, SERVING gateway (``settings.grpc_port`` 0 picks a free port); stopped
    gracefully on leaving."""
    parts = GatewayParts(settings)
    runner = ServiceRunner("issuer-gateway", parts.parts, grace_s=settings.shutdown_grace_s)
    async with runner.running():
        yield parts.running()
    log.info("gateway_stopped")


async def run_gateway(settings: GatewaySettings, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (None: until SIGTERM/SIGINT)."""
    await run_parts(
        "issuer-gateway",
        GatewayParts(settings).parts,
        grace_s=settings.shutdown_grace_s,
        stop=stop,
    )
    log.info("gateway_stopped")


def main() -> None:
    run_service("issuer-gateway", GatewaySettings(), run_gateway)
