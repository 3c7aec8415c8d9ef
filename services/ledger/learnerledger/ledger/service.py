"""``ledgerctl serve ledger``: consumer, outbox relay, checkpointer and admin API, declared as
parts (:func:`ledger_parts`) of the shared service runner (``learnerledger.runtime.lifecycle``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import grpc
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import Counter, Gauge

from learnerledger.domain.checkpoints import RecordedCheckpoint
from learnerledger.domain.signed_note import NoteSigner
from learnerledger.kafka import KAFKA_UNREACHABLE
from learnerledger.kafka.producer import (
    FATAL_PRODUCER_ERRORS,
    DurableProducer,
    durable_producer,
    started,
)
from learnerledger.kafka.topics import ensure_topics, topic_specs
from learnerledger.ledger.admin_api import ConsentPublisher, LedgerAdmin, ReplayRunner
from learnerledger.ledger.consumer import consume_completions
from learnerledger.ledger.learner_consent_api import LearnerConsentApi
from learnerledger.ledger.redecision import fan_out_approvals
from learnerledger.ledger.redemption_api import RedemptionApi
from learnerledger.ledger.relay import relay_entries
from learnerledger.ledger.settings import DEFAULT_LOG_ORIGIN, LedgerSettings
from learnerledger.ledger.tree_heads import publish_tree_heads, take_tree_head
from learnerledger.ledger.verification import (
    CheckpointerBusy,
    CheckpointRefused,
    load_signing_key,
    public_key_of,
    take_checkpoint,
)
from learnerledger.postgres import Connection
from learnerledger.postgres.errors import DATABASE_UNREACHABLE
from learnerledger.postgres.pool import create_pool
from learnerledger.rpc.auth import BearerAuthenticator, pool_lookup
from learnerledger.rpc.learner_tokens import verifier_from_settings
from learnerledger.rpc.server import RunningServer, TlsFiles, start_server
from learnerledger.runtime import (
    Background,
    GrpcServer,
    Metrics,
    Part,
    Resource,
    Step,
    restart_on_outage,
    run_parts,
    run_service,
    wait_or_stop,
)
from learnerledger.v1 import (
    learner_consent_pb2,
    learner_consent_pb2_grpc,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
    redemption_pb2,
    redemption_pb2_grpc,
)

log = structlog.get_logger(__name__)

CHECKPOINT_REFUSALS = Counter(
    "ledger_checkpoint_refusals_total",
    "Checkpointer ticks that refused to sign: the log is not the last checkpoint extended",
)
CHECKPOINT_REFUSING = Gauge(
    "ledger_checkpoint_refusing", "1 while the checkpointer refuses to sign, else 0"
)
CHECKPOINTS_SIGNED = Counter("ledger_checkpoints_signed_total", "Checkpoints signed and stored")
TREE_HEADS_SIGNED = Counter(
    "ledger_tree_heads_signed_total", "Signed tree heads (C2SP tlog-checkpoints) stored"
)
TREE_HEADS_PUBLISHED = Counter(
    "ledger_tree_heads_published_total", "Signed tree heads appended to ledger.checkpoints.v1"
)
TREE_SIZE = Gauge(
    "ledger_tree_size", "Entries in the Merkle tree (a commit-safe prefix of the log)"
)


#: How long the workers may take to finish their batch, and calls to finish, when stopping.
SHUTDOWN_GRACE_S = 5.0


def ledger_parts(settings: LedgerSettings) -> list[Part]:
    """The ledger's parts in start order (stopped in reverse): metrics, topics, its pools and
    producer, the replay runner, the admin API (and the public API), then the workers."""
    pool = Resource(
        "pool",
        lambda: create_pool(settings.database_url, role=settings.database_role, max_size=4),
        lambda pool: pool.close(),
    )
    admin_pool = Resource(
        "admin pool",
        lambda: create_pool(settings.database_url, role=settings.admin_database_role, max_size=2),
        lambda pool: pool.close(),
    )
    producer = Resource(
        "producer", lambda: _started_producer(settings), lambda producer: producer.stop()
    )

    async def replay_runner() -> ReplayRunner:
        # StartReplay: rebuilds run here, as the schema owner
        return ReplayRunner(
            settings.database_url, settings.kafka_bootstrap_servers, settings.topic_ledger_entries
        )

    # an interrupted replay resumes on the next StartReplay
    replays = Resource("replays", replay_runner, lambda replays: replays.stop())
    apis = Resource(
        "api servicers",
        lambda: _admin_apis(settings, admin_pool.value, producer.value, replays.value),
    )
    parts: list[Part] = [
        Metrics(settings.metrics_port),
        Step(
            "topics", lambda: ensure_topics(settings.kafka_bootstrap_servers, topic_specs(settings))
        ),
        pool,
        admin_pool,
        producer,
        replays,
        apis,
        GrpcServer("admin api", lambda: apis.value.serve_admin()),
    ]
    if settings.public_grpc_port is not None:
        parts.append(GrpcServer("public api", lambda: apis.value.serve_public()))

    def consumer(stop: asyncio.Event) -> Awaitable[None]:
        return consume_completions(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.topic_completions,
            dlq_topic=settings.topic_completions_dlq,
            group_id=settings.consumer_group,
            pool=pool.value,
            producer=producer.value,
            max_records=settings.batch_max_records,
            wait_ms=settings.batch_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            clock_skew=timedelta(seconds=settings.clock_skew_s),
            stop=stop,
        )

    def relay(stop: asyncio.Event) -> Awaitable[None]:
        return relay_entries(
            pool=pool.value,
            producer=producer.value,
            topic=settings.topic_ledger_entries,
            batch=settings.relay_batch,
            idle_ms=settings.relay_idle_ms,
            stop=stop,
        )

    def approval_fanout(stop: asyncio.Event) -> Awaitable[None]:
        return fan_out_approvals(
            pool=pool.value,
            producer=producer.value,
            topic=settings.topic_completions,
            idle_s=settings.approval_fanout_idle_s,
            stop=stop,
        )

    parts += [
        _worker("consumer", consumer),
        _worker("relay", relay),
        _worker("approval_fanout", approval_fanout),
    ]
    if settings.checkpoint_signing_key_file is not None:

        def checkpoints(stop: asyncio.Event) -> Awaitable[None]:
            return _checkpoints(settings, pool.value, producer.value, stop)

        parts.append(_worker("checkpoints", checkpoints))
    else:
        log.warning("checkpoints_disabled", reason="LEDGER_CHECKPOINT_SIGNING_KEY_FILE is not set")
    parts.append(Step("announce", _announce_started))
    return parts


async def _announce_started() -> None:
    log.info("ledger_started")


async def run_ledger(settings: LedgerSettings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (None: until SIGTERM/SIGINT); a worker that fails (other than
    an outage, which it rides out) stops the ledger with :class:`ServiceFailed`."""
    await run_parts("ledger", ledger_parts(settings), grace_s=SHUTDOWN_GRACE_S, stop=stop)
    log.info("ledger_stopped")


async def _started_producer(settings: LedgerSettings) -> DurableProducer:
    return await started(durable_producer(settings.kafka_bootstrap_servers, client_id="ledger"))


def _worker(name: str, run: Callable[[asyncio.Event], Awaitable[None]]) -> Background:
    """A worker that restarts ``run`` after a PostgreSQL or Kafka outage (its state is stored)."""

    async def riding_out_outages(stop: asyncio.Event) -> None:
        await restart_on_outage(
            name,
            lambda: run(stop),
            stop,
            outages=DATABASE_UNREACHABLE + KAFKA_UNREACHABLE + FATAL_PRODUCER_ERRORS,
        )

    return Background(name, riding_out_outages)


class Checkpointer:
    """Per tick: grows the Merkle tree and signs a tree head (``take_tree_head``), then signs an
    issue-12 checkpoint of the chain heads (``take_checkpoint``), never over a state it could
    not check.

    Remembers the checkpoint it signed last, so a newest checkpoint removed or replaced in the
    database while it runs is refused too. Tree heads are signed as ``origin`` (the key name
    of the note signature is the log's origin).
    """

    def __init__(
        self,
        key: Ed25519PrivateKey,
        origin: str = DEFAULT_LOG_ORIGIN,
        *,
        producer: DurableProducer | None = None,
        checkpoints_topic: str | None = None,
    ) -> None:
        self._key = key
        self._signer = NoteSigner(origin, key)
        self._producer = producer
        self._checkpoints_topic = checkpoints_topic
        self.last_signed: RecordedCheckpoint | None = None

    async def tick(self, pool: asyncpg.Pool) -> RecordedCheckpoint | None:
        """Sign one checkpoint; None if refused (logged, counted) or another pod is signing."""
        async with pool.acquire() as connection:
            try:
                tree_refused = not await self._tree_step(connection)
                signed = await take_checkpoint(connection, self._key, last_signed=self.last_signed)
            except CheckpointerBusy:
                log.info("checkpoint_skipped", reason="another checkpointer holds the lock")
                return None
            except CheckpointRefused as refused:
                _refused(
                    "the log is not the previous checkpoint extended by the new entries", refused
                )
                return None
        self.last_signed = signed
        CHECKPOINT_REFUSING.set(1 if tree_refused else 0)
        CHECKPOINTS_SIGNED.inc()
        log.info(
            "checkpoint_signed",
            checkpoint=signed.number,
            position=signed.signed.checkpoint.position,
            learners=signed.signed.checkpoint.learner_count,
            changed=signed.signed.checkpoint.changed_count,
        )
        return signed

    async def _tree_step(self, connection: Connection) -> bool:
        """Grow the tree and sign a tree head; False if refused (logged, counted)."""
        try:
            result = await take_tree_head(connection, self._signer)
        except CheckpointRefused as refused:
            _refused("the Merkle tree does not extend the last signed tree head", refused)
            return False
        TREE_SIZE.set(result.tree_size)
        if result.signed is not None:
            TREE_HEADS_SIGNED.inc()
            log.info("tree_head_signed", tree_size=result.signed.tree_size)
        if self._producer is not None and self._checkpoints_topic is not None:
            published = await publish_tree_heads(
                connection, self._producer, self._checkpoints_topic
            )
            if published:
                TREE_HEADS_PUBLISHED.inc(published)
                log.info("tree_heads_published", topic=self._checkpoints_topic, count=published)
        return True


def _refused(reason: str, refused: CheckpointRefused) -> None:
    CHECKPOINT_REFUSALS.inc()
    CHECKPOINT_REFUSING.set(1)
    log.error(
        "checkpoint_refused",
        reason=reason,
        problems=[d.describe() for d in refused.discrepancies[:20]],
        problem_count=len(refused.discrepancies),
        learner_ids=refused.learner_ids[:20],
    )


async def _checkpoints(
    settings: LedgerSettings, pool: asyncpg.Pool, producer: DurableProducer, stop: asyncio.Event
) -> None:
    assert settings.checkpoint_signing_key_file is not None
    checkpointer = Checkpointer(
        load_signing_key(settings.checkpoint_signing_key_file),
        settings.log_origin,
        producer=producer,
        checkpoints_topic=settings.topic_ledger_checkpoints,
    )
    while not stop.is_set():
        await wait_or_stop(stop, settings.checkpoint_interval_s)  # and one more when stopping
        await checkpointer.tick(pool)


@dataclass(frozen=True, slots=True)
class _AdminApis:
    """The ledger's gRPC services: all of them on ``grpc_port``, and with ``public_grpc_port``
    those universities and learners call (redemption, consent) on a port of their own."""

    settings: LedgerSettings
    admin: LedgerAdmin
    redemptions: RedemptionApi
    learners: LearnerConsentApi

    def _register_public(self, server: grpc.aio.Server) -> None:
        redemption_pb2_grpc.add_RedemptionServiceServicer_to_server(self.redemptions, server)
        learner_consent_pb2_grpc.add_LearnerConsentServiceServicer_to_server(self.learners, server)

    def _register_all(self, server: grpc.aio.Server) -> None:
        ledger_admin_pb2_grpc.add_LedgerAdminServiceServicer_to_server(self.admin, server)
        self._register_public(server)

    async def serve_admin(self) -> RunningServer:
        admin_name = ledger_admin_pb2.DESCRIPTOR.services_by_name["LedgerAdminService"].full_name
        server = await self._serve(
            self._register_all,
            [admin_name, *PUBLIC_SERVICE_NAMES],
            self.settings.grpc_port,
            self.settings.health_port,
        )
        log.info("admin_api_listening", port=server.port)
        return server

    async def serve_public(self) -> RunningServer:
        assert self.settings.public_grpc_port is not None
        server = await self._serve(
            self._register_public, PUBLIC_SERVICE_NAMES, self.settings.public_grpc_port, None
        )
        log.info("public_api_listening", port=server.port)
        return server

    async def _serve(
        self,
        register: Callable[[grpc.aio.Server], None],
        names: list[str],
        port: int,
        health_port: int | None,
    ) -> RunningServer:
        settings = self.settings
        return await start_server(
            register=register,
            service_names=names,
            bind=settings.grpc_bind,
            port=port,
            tls=TlsFiles(settings.tls_cert_file, settings.tls_key_file),
            health_port=health_port,
            max_connection_age_s=settings.grpc_max_connection_age_s,
            max_connection_age_grace_s=settings.grpc_max_connection_age_grace_s,
            serving=False,
        )


PUBLIC_SERVICE_NAMES = [
    redemption_pb2.DESCRIPTOR.services_by_name["RedemptionService"].full_name,
    learner_consent_pb2.DESCRIPTOR.services_by_name["LearnerConsentService"].full_name,
]


async def _admin_apis(
    settings: LedgerSettings,
    pool: asyncpg.Pool,
    producer: DurableProducer,
    replays: ReplayRunner | None = None,
) -> _AdminApis:
    trusted = (
        public_key_of(load_signing_key(settings.checkpoint_signing_key_file))
        if settings.checkpoint_signing_key_file is not None
        else None
    )
    authenticator = BearerAuthenticator(
        pool_lookup(pool), learner_tokens=verifier_from_settings(settings)
    )
    admin = LedgerAdmin(
        pool=pool,
        producer=producer,
        completions_topic=settings.topic_completions,
        authenticator=authenticator,
        trusted_public_key=trusted,
        replay=replays,
    )
    redemptions = RedemptionApi(
        pool=pool,
        producer=producer,
        completions_topic=settings.topic_completions,
        authenticator=authenticator,
    )
    learners = LearnerConsentApi(
        publisher=ConsentPublisher(pool, producer, settings.topic_completions),
        authenticator=authenticator,
    )
    return _AdminApis(settings, admin, redemptions, learners)


def main() -> None:
    run_service("ledger", LedgerSettings(), run_ledger)
