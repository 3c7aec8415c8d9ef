"""Shared fixtures: a real Kafka and PostgreSQL for integration and end-to-end tests.

Where the servers come from (first match wins):

1. ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` both set: those servers are used, nothing is
   started (``ADMIN_DATABASE_URL`` may name a superuser DSN; default: ``DATABASE_URL``).
2. ``LEDGER_TEST_BACKEND=testcontainers`` and a reachable Docker engine: a Kafka container
   (``LEDGER_TEST_KAFKA_IMAGE``, default ``confluentinc/cp-kafka:7.6.0`` in KRaft mode) and a
   PostgreSQL container (``LEDGER_TEST_POSTGRES_IMAGE``, default ``postgres:15``).
3. Otherwise (the default): the project's own local stack (``learnerledger_devstack.stack``) in a
   fresh temporary state directory on free ports, so tests never collide with a developer's
   running ``ledgerctl stack up``. It is stopped at the end of the session; with failures the
   last lines of the Kafka and PostgreSQL logs are printed in the summary.
   ``LEDGER_KEEP_TEST_STATE=1`` keeps the state directory for a post-mortem.

Fixtures: ``stack`` (session, :class:`StackInfo`), ``kafka_bootstrap`` (session, str),
``database_url`` / ``login_urls`` / ``admin_database_url`` (module: a fresh database per test
module, owned by ``ll_owner``, migrated as ``ll_migrator``, dropped afterwards;
``database_url`` is the migration login, ``login_urls`` each service's own login),
``topics`` (function: unique ``completions`` / ``ledger_entries`` / ``completions_dlq`` topics
with 3 partitions).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from learnerledger.kafka.security import client_options
from learnerledger_devstack import db_logins
from learnerledger_devstack.stack import (
    StackConfig,
    StackError,
    StackInfo,
    external_servers,
    log_tails,
    stack_down,
    stack_up,
    with_database,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

TEST_TOPIC_PARTITIONS = 3

# Session-wide bookkeeping for the hooks below (the local stack's config, its state dir).
_SESSION: dict[str, Any] = {}


# --------------------------------------------------------------------------------------------
# The stack


def fresh_stack_config(prefix: str) -> StackConfig:
    """A stack in a new state directory on free ports (not started)."""
    from tests.support.ports import free_ports

    base = StackConfig.from_env()
    # Short path under /tmp: the PostgreSQL unix socket path must stay under 108 bytes, and the
    # postgres OS user (when tests run as root) must be able to reach it.
    state = Path(tempfile.mkdtemp(prefix=prefix))
    state.chmod(0o755)
    kafka_port, controller_port, postgres_port = free_ports(3)
    return StackConfig(
        state_dir=state,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        postgres_port=postgres_port,
        start_timeout=base.start_timeout,
        stop_timeout=base.stop_timeout,
        kafka_libs_dir=base.libs_dir,  # share the developer's jar cache: no Maven run per session
    )


#: When these are set, ``stack_up`` uses those servers instead of starting its own (and Kafka
#: clients authenticate with the credentials for them).
EXTERNAL_SERVER_VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "ADMIN_DATABASE_URL",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
)


@contextlib.contextmanager
def own_servers_only() -> Iterator[None]:
    """Hide EXTERNAL_SERVER_VARIABLES, so that ``stack_up`` starts its own servers."""
    saved = {k: os.environ.pop(k) for k in EXTERNAL_SERVER_VARIABLES if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@contextlib.contextmanager
def kafka_admin_credentials(info: StackInfo) -> Iterator[None]:
    """Let this process's Kafka clients (``client_options()`` reads the environment)
    authenticate to ``info``'s Kafka as its super user ``admin``; restored afterwards."""
    admin = info.kafka_env.get("admin", {})
    saved = {name: os.environ.get(name) for name in admin}
    os.environ.update(admin)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def private_stack(prefix: str) -> Iterator[tuple[StackConfig, StackInfo]]:
    """A Kafka and PostgreSQL of their own, for tests that stop and restart them (the session's
    stack, or a developer's, is left alone); stopped afterwards. Meanwhile this process's Kafka
    clients authenticate to it as ``admin``."""
    cfg = fresh_stack_config(prefix)
    try:
        with own_servers_only():
            info = stack_up(cfg)
        assert not info.external
        with kafka_admin_credentials(info):
            yield cfg, info
    finally:
        stack_down(cfg)


def _local_stack() -> Iterator[StackInfo]:
    cfg = fresh_stack_config("ll-test-")
    _SESSION["cfg"] = cfg
    try:
        info = stack_up(cfg)
    except BaseException:
        stack_down(cfg)
        raise
    try:
        with kafka_admin_credentials(info):
            yield info
    finally:
        stack_down(cfg)


def _testcontainers_stack() -> Iterator[StackInfo]:
    """Kafka and PostgreSQL in containers (needs Docker; not available on every machine)."""
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable engine"
        pytest.fail(
            "LEDGER_TEST_BACKEND=testcontainers needs a reachable Docker engine "
            f"({type(exc).__name__}: {exc}); unset it to use the local stack",
            pytrace=False,
        )
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    kafka = (
        KafkaContainer(os.environ.get("LEDGER_TEST_KAFKA_IMAGE", "confluentinc/cp-kafka:7.6.0"))
        .with_kraft()
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    postgres = PostgresContainer(
        os.environ.get("LEDGER_TEST_POSTGRES_IMAGE", "postgres:15"),
        username="postgres",
        password="postgres",
        dbname="learnerledger",
        driver=None,
    )
    with kafka, postgres:
        admin = postgres.get_connection_url(driver=None)
        logins = asyncio.run(_create_logins(admin, admin))
        yield StackInfo(
            kafka_bootstrap=kafka.get_bootstrap_server(),
            database_url=logins["migrator"],
            admin_database_url=admin,
            kafka_pid=None,
            postgres_pid=None,
            external=True,
            logins=logins,
        )


async def _create_logins(admin_dsn: str, base_dsn: str) -> dict[str, str]:
    """The migration and service logins (``learnerledger_devstack.db_logins``), created as the
    superuser ``admin_dsn`` with fresh passwords; their DSNs (host of ``base_dsn``) by purpose."""
    import asyncpg

    passwords = {login.name: secrets.token_urlsafe(24) for login in db_logins.LOGINS}
    conn = await asyncpg.connect(admin_dsn)
    try:
        await db_logins.ensure_logins(conn, passwords)
    finally:
        await conn.close()
    return db_logins.login_dsns(base_dsn, passwords)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    """Running Kafka + PostgreSQL for this test session (see the module docstring)."""
    if external_servers() is not None:
        # Starts nothing; checks both servers answer and says so on stderr.
        yield stack_up(StackConfig.from_env())
    elif os.environ.get("LEDGER_TEST_BACKEND", "").strip().lower() == "testcontainers":
        yield from _testcontainers_stack()
    else:
        yield from _local_stack()


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: StackInfo) -> str:
    return stack.kafka_bootstrap


# --------------------------------------------------------------------------------------------
# A fresh database per test module


async def _apply_migrations(dsn: str) -> None:
    """``learnerledger.postgres.migrations.migrate(dsn)`` if that module exists."""
    try:
        spec = importlib.util.find_spec("learnerledger.postgres.migrations")
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        return
    module = importlib.import_module("learnerledger.postgres.migrations")
    await module.migrate(dsn)


@dataclass(frozen=True)
class FreshDatabase:
    name: str
    url: str
    """The migration login ``ll_migrator`` (a member of the owner role ``ll_owner``): test setup."""
    admin_url: str
    """Superuser (local stack / containers) or whatever ADMIN_DATABASE_URL says."""
    logins: dict[str, str]
    """DSN by purpose (``migrator``, ``gateway``, ``ledger``, ``projector``, ``query``,
    ``admin``): each service's own login; with external servers and no logins, ``url``."""


@pytest.fixture(scope="session")
def stack_logins(stack: StackInfo) -> dict[str, str]:
    """The stack's logins (see :mod:`learnerledger_devstack.db_logins`). External servers whose
    ADMIN_DATABASE_URL is a superuser get them created; otherwise DATABASE_URL serves all."""
    if stack.logins:
        return stack.logins
    if stack.admin_database_url != stack.database_url:
        return asyncio.run(_create_logins(stack.admin_database_url, stack.database_url))
    return {login.purpose: stack.database_url for login in db_logins.LOGINS}


@contextlib.asynccontextmanager
async def new_database(
    stack: StackInfo, stack_logins: dict[str, str]
) -> AsyncIterator[FreshDatabase]:
    """A fresh database on the session's PostgreSQL, owned by ``ll_owner`` and migrated as
    ``ll_migrator``, dropped afterwards."""
    import asyncpg

    name = f"test_{secrets.token_hex(6)}"
    separate = stack_logins["migrator"] != stack.database_url or bool(stack.logins)
    owner = db_logins.OWNER_ROLE if separate else urlsplit(stack.database_url).username
    maintenance = with_database(stack.admin_database_url, "postgres")
    conn = await asyncpg.connect(maintenance)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    finally:
        await conn.close()
    logins = {purpose: with_database(dsn, name) for purpose, dsn in stack_logins.items()}
    db = FreshDatabase(
        name=name,
        url=logins["migrator"],
        admin_url=with_database(stack.admin_database_url, name),
        logins=logins,
    )
    try:
        await _apply_migrations(db.url)
        yield db
    finally:
        conn = await asyncpg.connect(maintenance)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="module")
async def fresh_database(
    stack: StackInfo, stack_logins: dict[str, str]
) -> AsyncIterator[FreshDatabase]:
    async with new_database(stack, stack_logins) as db:
        yield db


@pytest.fixture(scope="module")
def database_url(fresh_database: FreshDatabase) -> str:
    """DSN of a fresh, migrated database for this test module, as the migration login
    ``ll_migrator`` (a member of the owner role and of every service role: for test setup and
    for services whose privileges a test does not concern)."""
    return fresh_database.url


@pytest.fixture(scope="module")
def login_urls(fresh_database: FreshDatabase) -> dict[str, str]:
    """DSN of the same database by purpose, each as its own login: ``gateway``, ``ledger``,
    ``projector``, ``query``, ``admin`` (and ``migrator``)."""
    return fresh_database.logins


@pytest.fixture(scope="module")
def admin_database_url(fresh_database: FreshDatabase) -> str:
    """Superuser DSN of the same database as ``database_url`` (for tamper tests)."""
    return fresh_database.admin_url


# --------------------------------------------------------------------------------------------
# Unique topics per test


@dataclass(frozen=True)
class TopicNames:
    completions: str
    ledger_entries: str
    completions_dlq: str
    checkpoints: str = ""  # ledger.checkpoints.v1: one partition, like the real one
    partitions: int = TEST_TOPIC_PARTITIONS

    def all(self) -> tuple[str, str, str]:
        return (self.completions, self.ledger_entries, self.completions_dlq)

    def env(self) -> dict[str, str]:
        """Settings overrides for a service process that should use these topics."""
        return {
            "TOPIC_COMPLETIONS": self.completions,
            "TOPIC_LEDGER_ENTRIES": self.ledger_entries,
            "TOPIC_COMPLETIONS_DLQ": self.completions_dlq,
            "TOPIC_LEDGER_CHECKPOINTS": self.checkpoints,
            "TOPIC_PARTITIONS": str(self.partitions),
        }


@pytest.fixture
async def topics(kafka_bootstrap: str) -> AsyncIterator[TopicNames]:
    """Fresh ``completions.v1.t<hex>``-style topics (3 partitions each), deleted afterwards."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    suffix = secrets.token_hex(4)
    names = TopicNames(
        completions=f"completions.v1.t{suffix}",
        ledger_entries=f"ledger.entries.v1.t{suffix}",
        completions_dlq=f"completions.dlq.v1.t{suffix}",
        checkpoints=f"ledger.checkpoints.v1.t{suffix}",
    )
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka_bootstrap, client_id="pytest-topics", **client_options()
    )
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, num_partitions=names.partitions, replication_factor=1)
                for name in names.all()
            ]
            + [NewTopic(names.checkpoints, num_partitions=1, replication_factor=1)]
        )
        await _wait_for_leaders(admin, names.all(), names.partitions)
        await _wait_for_leaders(admin, (names.checkpoints,), 1)
        yield names
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics([*names.all(), names.checkpoints])
        await admin.close()


async def _wait_for_leaders(admin: Any, names: tuple[str, ...], partitions: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        described = await admin.describe_topics(list(names))
        ready = sum(
            1
            for topic in described
            if topic["error_code"] == 0
            for partition in topic["partitions"]
            if partition["leader"] >= 0
        )
        if ready == len(names) * partitions:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {names} have no leaders after 30s: {described}")
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Hooks: log tails on failure, state dir cleanup


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    cfg = _SESSION.get("cfg")
    if cfg is None:
        return
    if not (terminalreporter.stats.get("failed") or terminalreporter.stats.get("error")):
        return
    try:
        tails = log_tails(cfg, 30)
    except (OSError, StackError):
        return
    for component, text in tails.items():
        terminalreporter.write_sep("-", f"local stack: last lines of the {component} log")
        terminalreporter.write_line(text.rstrip() or "(empty)")
    terminalreporter.write_line(f"(state dir: {cfg.state_dir})")


def pytest_unconfigure(config: pytest.Config) -> None:
    cfg = _SESSION.pop("cfg", None)
    if cfg is None:
        return
    if os.environ.get("LEDGER_KEEP_TEST_STATE"):
        print(f"LEDGER_KEEP_TEST_STATE: kept {cfg.state_dir}")
        return
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
