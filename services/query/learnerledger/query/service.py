"""``ledgerctl serve query``: TranscriptQueryService with health checking and reflection, and
the HTTP API; its parts (:class:`QueryParts`) run under the shared service runner."""

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
from learnerledger.query.http_api import RunningHttp, start_http
from learnerledger.query.server import TranscriptQueryServicer
from learnerledger.query.settings import QuerySettings
from learnerledger.query.web import WebPages, parse_trusted_keys
from learnerledger.rpc.learner_tokens import LearnerTokenVerifier, verifier_from_settings
from learnerledger.rpc.server import RunningServer, TlsFiles, start_server
from learnerledger.runtime import (
    Background,
    GrpcServer,
    Metrics,
    Part,
    Resource,
    Step,
    run_parts,
    run_service,
)
from learnerledger.v1 import transcript_query_pb2, transcript_query_pb2_grpc

log = structlog.get_logger(__name__)

SERVICE_NAME = transcript_query_pb2.DESCRIPTOR.services_by_name["TranscriptQueryService"].full_name


#: How long running calls (and the retention worker) may take to finish when stopping.
SHUTDOWN_GRACE_S = 2.0


class QueryParts:
    """The query service's parts in start order (stopped in reverse): metrics, the pool, the
    gRPC API, the HTTP API (with ``http_port``), the credential issuer, the access-log
    retention worker."""

    def __init__(
        self,
        settings: QuerySettings,
        bound: asyncio.Future[int] | None = None,
        http_bound: asyncio.Future[int] | None = None,
    ) -> None:
        self.settings = settings
        self.bound = bound
        self.http_bound = http_bound
        self.credentials = CredentialIssuerSlot()
        self.learner_tokens = verifier_from_settings(settings)
        self.pool = Resource(
            "pool",
            lambda: create_pool(
                settings.database_url, role=settings.database_role, max_size=settings.pool_max_size
            ),
            lambda pool: pool.close(),
        )
        self.api = GrpcServer("api", self._start_api)
        self.http: Resource[RunningHttp] | None = None
        self.parts: list[Part] = [Metrics(settings.metrics_port), self.pool, self.api]
        if settings.http_port is not None:
            self.http = Resource("http api", self._start_http, lambda http: http.stop())
            self.parts.append(self.http)
        self.parts += [
            Step("credential issuer", self._credential_issuer),
            _Announcement(self),
            Background("record-accesses-retention", self._retention),
        ]

    async def _start_api(self) -> RunningServer:
        settings = self.settings
        servicer = TranscriptQueryServicer(
            self.pool.value,
            watch_poll_s=settings.watch_poll_ms / 1000,
            min_position_poll_s=settings.min_position_poll_ms / 1000,
            learner_tokens=self.learner_tokens,
            credentials=self.credentials,
        )
        return await start_server(
            register=lambda s: (
                transcript_query_pb2_grpc.add_TranscriptQueryServiceServicer_to_server(servicer, s)
            ),
            service_names=[SERVICE_NAME],
            bind=settings.grpc_bind,
            port=settings.grpc_port,
            tls=TlsFiles(settings.tls_cert_file, settings.tls_key_file),
            health_port=settings.health_port,
            max_connection_age_s=settings.grpc_max_connection_age_s,
            max_connection_age_grace_s=settings.grpc_max_connection_age_grace_s,
            serving=False,
        )

    async def _start_http(self) -> RunningHttp:
        settings, pool = self.settings, self.pool.value
        assert settings.http_port is not None
        http = await start_http(
            pool,
            bind=settings.http_bind,
            port=settings.http_port,
            tls_cert_file=settings.tls_cert_file,
            tls_key_file=settings.tls_key_file,
            credentials=self.credentials,
            pages=web_pages(settings, pool, self.learner_tokens, grpc_port=self.api.port),
        )
        log.info("query_http_listening", address=f"{settings.http_bind}:{http.port}")
        return http

    async def _credential_issuer(self) -> None:
        settings = self.settings
        if settings.credential_signing_key_file is None:
            return
        credential_key = load_credential_key(settings.credential_signing_key_file)
        public_url = settings.credential_public_url
        if public_url is None and self.http is not None:
            scheme = "https" if settings.tls_cert_file and settings.tls_key_file else "http"
            public_url = f"{scheme}://{settings.http_bind}:{self.http.value.port}"
        if public_url is None:
            log.warning(
                "credentials_off",
                why="QUERY_CREDENTIAL_SIGNING_KEY_FILE is set but neither QUERY_HTTP_PORT nor "
                "QUERY_CREDENTIAL_PUBLIC_URL: nowhere to publish the DID document and status lists",
            )
            return
        issuer = CredentialIssuer(did_web(public_url), settings.credential_issuer_name,
                                  public_url)  # fmt: skip
        issuing = CredentialIssuing(self.pool.value, credential_key, issuer)
        await issuing.record_key()
        self.credentials.issuing = issuing
        log.info("credential_issuer", did=issuer.did, kid=issuing.key_id)

    async def _retention(self, stop: asyncio.Event) -> None:
        await access_log.retention_worker(
            self.pool.value,
            retention=timedelta(days=self.settings.access_log_retention_days),
            interval_s=self.settings.access_log_prune_interval_s,
            stop=stop,
        )


class _Announcement(Part):
    """Once the service is SERVING: ``bound`` and ``http_bound`` receive the ports, and
    ``query_started`` is logged (a caller that waits for the port can call at once)."""

    def __init__(self, parts: QueryParts) -> None:
        super().__init__("announce")
        self._parts = parts

    async def set_serving(self, serving: bool) -> None:
        parts = self._parts
        if not serving:
            return
        if parts.http is not None and parts.http_bound is not None:
            parts.http_bound.set_result(parts.http.value.port)
        port = parts.api.port
        if parts.bound is not None:
            parts.bound.set_result(port)
        log.info("query_started", address=f"{parts.settings.grpc_bind}:{port}")


async def run_query(
    settings: QuerySettings,
    stop: asyncio.Event | None = None,
    bound: asyncio.Future[int] | None = None,
    http_bound: asyncio.Future[int] | None = None,
) -> None:
    """Serve until ``stop`` is set (None: until SIGTERM/SIGINT); ``bound`` receives the gRPC
    port actually bound, ``http_bound`` the HTTP API's (when ``http_port`` is set)."""
    parts = QueryParts(settings, bound, http_bound)
    await run_parts("query", parts.parts, grace_s=SHUTDOWN_GRACE_S, stop=stop)
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
