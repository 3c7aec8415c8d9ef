"""Run the issuer gateway: ``ledgerctl serve gateway`` calls :func:`main`.

Shutdown (SIGTERM/SIGINT or ``stop``): health goes NOT_SERVING, the server refuses new calls
and lets running ones finish for ``shutdown_grace_s``, in-flight sends are awaited, then the
producer is flushed and stopped.
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
from learnerledger.kafka.producer import DurableProducer, durable_producer
from learnerledger.kafka.topics import ensure_topics, topic_specs
from learnerledger.postgres.pool import create_pool
from learnerledger.rpc.auth import BearerAuthenticator, pool_lookup
from learnerledger.rpc.learner_tokens import verifier_from_settings
from learnerledger.rpc.server import RunningServer, TlsFiles, start_server
from learnerledger.runtime import run_service, stop_on_signals
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


@contextlib.asynccontextmanager
async def gateway(settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """A started gateway (``settings.grpc_port`` 0 picks a free port); stopped gracefully."""
    await ensure_topics(settings.kafka_bootstrap_servers, topic_specs(settings))
    pool = await create_pool(settings.database_url, role=settings.database_role, max_size=8)
    producer = durable_producer(
        settings.kafka_bootstrap_servers,
        client_id="issuer-gateway",
        request_timeout_ms=max(1000, int(settings.send_timeout_s * 1000)),
    )
    try:
        await producer.start()
        servicer = IssuerGateway(
            settings,
            pool=pool,
            producer=producer,
            authenticator=BearerAuthenticator(
                pool_lookup(pool),
                ttl_s=settings.auth_cache_s,
                learner_tokens=verifier_from_settings(settings),
            ),
        )
        server = await start_server(
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
        )
    except BaseException:
        await producer.stop()
        await pool.close()
        raise
    log.info("gateway_started", port=server.port, bind=settings.grpc_bind)
    try:
        yield RunningGateway(server, servicer, producer, pool)
    finally:
        await server.stop(settings.shutdown_grace_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(servicer.wait_idle(), timeout=settings.shutdown_grace_s)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.flush(), timeout=settings.shutdown_grace_s)
        await producer.stop()
        await pool.close()
        log.info("gateway_stopped")


async def run_gateway(settings: GatewaySettings, stop: asyncio.Event | None = None) -> None:
    stop = stop or stop_on_signals()
    async with gateway(settings):
        await stop.wait()


def main() -> None:
    run_service("issuer-gateway", GatewaySettings(), run_gateway)
