"""``ledgerctl serve query``: TranscriptQueryService with health checking and reflection."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from learnerledger.postgres.pool import create_pool
from learnerledger.query import access_log
from learnerledger.query.server import TranscriptQueryServicer
from learnerledger.query.settings import QuerySettings
from learnerledger.rpc.learner_tokens import verifier_from_settings
from learnerledger.rpc.server import TlsFiles, start_server
from learnerledger.runtime import run_service, stop_on_signals
from learnerledger.v1 import transcript_query_pb2, transcript_query_pb2_grpc

log = structlog.get_logger(__name__)

SERVICE_NAME = transcript_query_pb2.DESCRIPTOR.services_by_name["TranscriptQueryService"].full_name


async def run_query(
    settings: QuerySettings,
    stop: asyncio.Event | None = None,
    bound: asyncio.Future[int] | None = None,
) -> None:
    """Serve until ``stop`` is set; ``bound`` receives the port actually bound."""
    stop = stop or stop_on_signals()
    pool = await create_pool(
        settings.database_url, role=settings.database_role, max_size=settings.pool_max_size
    )
    servicer = TranscriptQueryServicer(
        pool,
        watch_poll_s=settings.watch_poll_ms / 1000,
        min_position_poll_s=settings.min_position_poll_ms / 1000,
        learner_tokens=verifier_from_settings(settings),
    )
    server = await start_server(
        register=lambda s: transcript_query_pb2_grpc.add_TranscriptQueryServiceServicer_to_server(
            servicer, s
        ),
        service_names=[SERVICE_NAME],
        bind=settings.grpc_bind,
        port=settings.grpc_port,
        tls=TlsFiles(settings.tls_cert_file, settings.tls_key_file),
        health_port=settings.health_port,
        max_connection_age_s=settings.grpc_max_connection_age_s,
        max_connection_age_grace_s=settings.grpc_max_connection_age_grace_s,
    )
    port = server.port
    if bound is not None:
        bound.set_result(port)
    log.info("query_started", address=f"{settings.grpc_bind}:{port}")
    pruning = asyncio.create_task(
        access_log.retention_worker(
            pool,
            retention=timedelta(days=settings.access_log_retention_days),
            interval_s=settings.access_log_prune_interval_s,
            stop=stop,
        ),
        name="record-accesses-retention",
    )
    try:
        await stop.wait()
    finally:
        await server.stop(grace_s=2)
        stop.set()  # ends the retention worker too
        await pruning
        await pool.close()
        log.info("query_stopped")


def main() -> None:
    run_service("query", QuerySettings(), run_query)
