"""``ledgerctl serve query``: TranscriptQueryService with health checking and reflection."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import grpc
import structlog

from learnerledger.domain.credentials import CredentialIssuer, did_web
from learnerledger.postgres.pool import create_pool
from learnerledger.query import access_log
from learnerledger.query.credentials import (
    CredentialIssuerSlot,
    CredentialIssuing,
    load_credential_key,
)
from learnerledger.query.http_api import start_http
from learnerledger.query.server import TranscriptQueryServicer
from learnerledger.query.settings import QuerySettings
from learnerledger.query.web import WebPages, parse_trusted_keys
from learnerledger.rpc.learner_tokens import LearnerTokenVerifier, verifier_from_settings
from learnerledger.rpc.server import TlsFiles, start_server
from learnerledger.runtime import run_service, stop_on_signals
from learnerledger.v1 import transcript_query_pb2, transcript_query_pb2_grpc

log = structlog.get_logger(__name__)

SERVICE_NAME = transcript_query_pb2.DESCRIPTOR.services_by_name["TranscriptQueryService"].full_name


async def run_query(
    settings: QuerySettings,
    stop: asyncio.Event | None = None,
    bound: asyncio.Future[int] | None = None,
    http_bound: asyncio.Future[int] | None = None,
) -> None:
    """Serve until ``stop`` is set; ``bound`` receives the gRPC port actually bound,
    ``http_bound`` the HTTP API's (when ``http_port`` is set)."""
    stop = stop or stop_on_signals()
    pool = await create_pool(
        settings.database_url, role=settings.database_role, max_size=settings.pool_max_size
    )
    credentials = CredentialIssuerSlot()
    credential_key = (
        load_credential_key(settings.credential_signing_key_file)
        if settings.credential_signing_key_file is not None
        else None
    )
    learner_tokens = verifier_from_settings(settings)
    servicer = TranscriptQueryServicer(
        pool,
        watch_poll_s=settings.watch_poll_ms / 1000,
        min_position_poll_s=settings.min_position_poll_ms / 1000,
        learner_tokens=learner_tokens,
        credentials=credentials,
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
    http = None
    if settings.http_port is not None:
        http = await start_http(
            pool,
            bind=settings.http_bind,
            port=settings.http_port,
            tls_cert_file=settings.tls_cert_file,
            tls_key_file=settings.tls_key_file,
            credentials=credentials,
            pages=web_pages(settings, pool, learner_tokens, grpc_port=server.port),
        )
        log.info("query_http_listening", address=f"{settings.http_bind}:{http.port}")
    if credential_key is not None:
        public_url = settings.credential_public_url
        if public_url is None and http is not None:
            scheme = "https" if settings.tls_cert_file and settings.tls_key_file else "http"
            public_url = f"{scheme}://{settings.http_bind}:{http.port}"
        if public_url is None:
            log.warning(
                "credentials_off",
                why="QUERY_CREDENTIAL_SIGNING_KEY_FILE is set but neither QUERY_HTTP_PORT nor "
                "QUERY_CREDENTIAL_PUBLIC_URL: nowhere to publish the DID document and status lists",
            )
        else:
            issuer = CredentialIssuer(did_web(public_url), settings.credential_issuer_name,
                                      public_url)  # fmt: skip
            issuing = CredentialIssuing(pool, credential_key, issuer)
            await issuing.record_key()
            credentials.issuing = issuing
            log.info("credential_issuer", did=issuer.did, kid=issuing.key_id)
    if http is not None and http_bound is not None:
        http_bound.set_result(http.port)
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
        if http is not None:
            await http.stop()
        await server.stop(grace_s=2)
        stop.set()  # ends the retention worker too
        await pruning
        await pool.close()
        log.info("query_stopped")


def web_pages(
    settings: QuerySettings,
    pool: asyncpg.Pool,
    learner_tokens: LearnerTokenVerifier | None,
    *,
    grpc_port: int,
) -> WebPages:
    """The web pages, calling this process's gRPC API (and the ledger's consent service) with
    the learner's own token; TLS with the service's certificate as the root when it has one."""
    credentials = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        credentials = grpc.ssl_channel_credentials(settings.tls_cert_file.read_bytes())
    own_host = "127.0.0.1" if settings.grpc_bind in ("0.0.0.0", "::", "") else settings.grpc_bind
    return WebPages(
        pool,
        trusted_keys=parse_trusted_keys(settings.web_checkpoint_vkeys),
        learner_tokens=learner_tokens,
        query_target=f"{own_host}:{grpc_port}",
        ledger_target=settings.web_ledger_address,
        channel_credentials=credentials,
        public_url=settings.web_public_url,
        expiring_soon=timedelta(days=settings.web_expiring_soon_days),
    )


def main() -> None:
    run_service("query", QuerySettings(), run_query)
