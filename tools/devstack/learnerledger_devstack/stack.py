"""The local stack: Apache Kafka (single KRaft node) + PostgreSQL, run by the project's own code.

No Docker: Kafka's jars come from Maven Central (``deploy/local/kafka/pom.xml``) and run on the
machine's Java 17+; PostgreSQL is the distribution's server binaries running *our own* cluster
under the state directory. Used by ``ledgerctl stack up|down|status`` and by pytest fixtures.

Settings (environment): :class:`learnerledger_devstack.settings.DevStackSettings`
(``LEDGER_STATE_DIR``, ``LOCAL_KAFKA_PORT``, ``LOCAL_POSTGRES_PORT``, ...), and::

    KAFKA_BOOTSTRAP_SERVERS + DATABASE_URL   both set: use those servers, start nothing
    ADMIN_DATABASE_URL            superuser DSN for external servers (default: DATABASE_URL)

Typical use::

    cfg = StackConfig.from_env()
    info = stack_up(cfg)          # idempotent; reuses a healthy running stack
    print(format_status(stack_status(cfg)))
    stack_down(cfg)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from learnerledger_devstack import kafka_broker, processes, settings
from learnerledger_devstack.kafka_broker import (
    API_VERSIONS_MAIN,
    CONSUMER_PERF_MAIN,
    KAFKA_VERSION,
    PRODUCER_PERF_MAIN,
    KafkaBroker,
    check_kafka,
)
from learnerledger_devstack.postgres_server import (
    PostgresServer,
    check_postgres,
    find_bin_dir,
    mask_password,
    with_database,
)
from learnerledger_devstack.stack_errors import (
    ComponentFailedToStart,
    ComponentUnreachable,
    JavaMissing,
    KafkaJarsUnavailable,
    MavenMissing,
    PortInUse,
    PostgresAuthFailed,
    PostgresNotInstalled,
    StackError,
    StateDirUnusable,
)

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable

__all__ = [
    "API_VERSIONS_MAIN",
    "CONSUMER_PERF_MAIN",
    "KAFKA_VERSION",
    "PRODUCER_PERF_MAIN",
    "ComponentFailedToStart",
    "ComponentStatus",
    "ComponentUnreachable",
    "JavaMissing",
    "KafkaJarsUnavailable",
    "MavenMissing",
    "PortInUse",
    "PostgresAuthFailed",
    "PostgresNotInstalled",
    "StackConfig",
    "StackError",
    "StackInfo",
    "StateDirUnusable",
    "check_kafka",
    "check_postgres",
    "external_servers",
    "format_status",
    "kafka_class_path",
    "log_tails",
    "mask_password",
    "resolve_kafka_jars",
    "run_kafka_tool",
    "stack_down",
    "stack_status",
    "stack_up",
    "with_database",
]

REPO_ROOT = settings.REPO_ROOT


@dataclass
class StackConfig:
    """Where the stack keeps its state and which ports it listens on (all on 127.0.0.1)."""

    state_dir: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    postgres_port: int = 5432
    start_timeout: float = 90.0
    stop_timeout: float = 30.0
    kafka_libs_dir: Path | None = None
    """Jar cache; default ``<state_dir>/kafka-libs``. Share one across state dirs to skip Maven."""

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).expanduser().absolute()
        if self.kafka_libs_dir is not None:
            self.kafka_libs_dir = Path(self.kafka_libs_dir).expanduser().absolute()
        ports = {
            "LOCAL_KAFKA_PORT": self.kafka_port,
            "LOCAL_KAFKA_CONTROLLER_PORT": self.kafka_controller_port,
            "LOCAL_POSTGRES_PORT": self.postgres_port,
        }
        if len(set(ports.values())) != len(ports):
            raise StackError(
                "LOCAL_KAFKA_PORT, LOCAL_KAFKA_CONTROLLER_PORT and LOCAL_POSTGRES_PORT must "
                f"differ, got {ports}"
            )

    @classmethod
    def from_env(cls) -> StackConfig:
        """The configuration of :class:`DevStackSettings` (the environment)."""
        env = settings.load_settings()
        return cls(
            state_dir=env.effective_state_dir,
            kafka_port=env.kafka_port,
            kafka_controller_port=env.kafka_controller_port,
            postgres_port=env.postgres_port,
            start_timeout=env.stack_start_timeout,
            stop_timeout=env.stack_stop_timeout,
            kafka_libs_dir=env.kafka_libs_dir,
        )

    @property
    def libs_dir(self) -> Path:
        return self.kafka_libs_dir or self.state_dir / "kafka-libs"

    def kafka(self) -> KafkaBroker:
        return KafkaBroker(
            state_dir=self.state_dir,
            libs_dir=self.libs_dir,
            port=self.kafka_port,
            controller_port=self.kafka_controller_port,
        )

    def postgres(self) -> PostgresServer:
        return PostgresServer(state_dir=self.state_dir, port=self.postgres_port)


@dataclass(frozen=True)
class StackInfo:
    """How to reach a running stack."""

    kafka_bootstrap: str
    database_url: str
    """The migration login (``ll_migrator``) over TCP; with external servers, DATABASE_URL."""
    admin_database_url: str
    """Superuser (``postgres``) over the private unix socket; same database."""
    kafka_pid: int | None
    postgres_pid: int | None
    external: bool = False
    """True when KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL pointed at servers we did not start."""
    state_dir: Path | None = None
    kafka_log: Path | None = None
    postgres_log: Path | None = None
    kafka_env: dict[str, dict[str, str]] = field(default_factory=dict)
    """The local stack's KAFKA_* settings by principal (``admin``, ``gateway``, ``ledger``,
    ``projector``; :data:`kafka_broker.PRINCIPALS`); empty for external servers."""
    logins: dict[str, str] = field(default_factory=dict)
    """The local stack's DSN by purpose (``migrator``, ``gateway``, ``ledger``, ``projector``,
    ``query``, ``admin``; see :mod:`learnerledger_devstack.db_logins`); empty for external servers,
    where ``database_url`` serves every purpose."""

    def login_url(self, purpose: str) -> str:
        """DSN of the login for ``purpose`` (a service name, ``admin`` or ``migrator``)."""
        return self.logins.get(purpose, self.database_url)

    def service_env(self, purpose: str) -> dict[str, str]:
        """``env()`` with the DATABASE_URL and Kafka principal of ``purpose`` (a service name;
        a service without a principal, such as query, gets no Kafka credentials)."""
        env = {**self.env(), "DATABASE_URL": self.login_url(purpose)}
        for name in _KAFKA_CREDENTIAL_NAMES:
            env.pop(name, None)
        return {**env, **self.kafka_env.get(purpose, {})}

    def env(self) -> dict[str, str]:
        """Environment for a process that should use this stack (Kafka as ``admin``)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "DATABASE_URL": self.database_url,
            "ADMIN_DATABASE_URL": self.admin_database_url,
            **self.kafka_env.get(kafka_broker.ADMIN_PRINCIPAL, {}),
        }


_KAFKA_CREDENTIAL_NAMES = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    pid: int | None
    healthy: bool
    detail: str = ""
    log: Path | None = field(default=None, compare=False)


# --------------------------------------------------------------------------------------------
# Jars and tools


def resolve_kafka_jars(cfg: StackConfig) -> Path:
    """Resolve the Kafka jars with Maven once (cached under ``cfg.libs_dir``); return the dir.

    Re-runs Maven when ``deploy/local/kafka/pom.xml`` changes. Raises :class:`JavaMissing` or
    :class:`MavenMissing` with install instructions when the tools are absent.
    """
    kafka_broker.find_java()
    return kafka_broker.resolve_jars(cfg.libs_dir, kafka_broker.default_pom())


def kafka_class_path(cfg: StackConfig) -> str:
    """``-cp`` value for the Kafka jars (resolving them first if needed)."""
    return kafka_broker.class_path(resolve_kafka_jars(cfg))


def run_kafka_tool(
    cfg: StackConfig,
    main_class: str,
    args: list[str],
    *,
    timeout: float | None = None,
    check: bool = True,
    capture: bool = True,
    heap: str = "-Xmx512m",
) -> subprocess.CompletedProcess[str]:
    """Run a Kafka tool main class, e.g.::

    run_kafka_tool(cfg, PRODUCER_PERF_MAIN, ["--topic", "t", "--num-records", "100000",
                   "--record-size", "200", "--throughput", "-1",
                   "--producer-props", f"bootstrap.servers={info.kafka_bootstrap}", "acks=all"])
    """
    libs = resolve_kafka_jars(cfg)
    broker = cfg.kafka()
    log4j = broker.home / "tools-log4j2.properties"
    if not log4j.exists():
        broker.home.mkdir(parents=True, exist_ok=True)
        log4j.write_text(broker.log4j2_properties(file=None))
    return kafka_broker.run_tool(
        libs,
        main_class,
        args,
        log4j=log4j,
        heap=heap,
        timeout=timeout,
        check=check,
        capture=capture,
    )


# --------------------------------------------------------------------------------------------
# External servers


def external_servers() -> tuple[str, str] | None:
    """``(KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL)`` when both are set, else None."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    dsn = os.environ.get("DATABASE_URL", "").strip()
    if bootstrap and dsn:
        return bootstrap, dsn
    return None


def _external_up(bootstrap: str, dsn: str, timeout: float) -> StackInfo:
    print(
        f"stack: KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL are set; using external servers "
        f"{bootstrap} and {mask_password(dsn)} (nothing started)",
        file=sys.stderr,
    )
    check_kafka(bootstrap, timeout=timeout)
    check_postgres(dsn, timeout=timeout)
    admin = os.environ.get("ADMIN_DATABASE_URL", "").strip() or dsn
    return StackInfo(
        kafka_bootstrap=bootstrap,
        database_url=dsn,
        admin_database_url=admin,
        kafka_pid=None,
        postgres_pid=None,
        external=True,
    )


# --------------------------------------------------------------------------------------------
# up / down / status


def stack_up(cfg: StackConfig) -> StackInfo:
    """Start Kafka and PostgreSQL (or reuse them if already running and healthy).

    Returns only once Kafka answers a metadata request and PostgreSQL answers ``SELECT 1`` as
    the app role. Raises :class:`PortInUse`, :class:`JavaMissing`, :class:`MavenMissing`,
    :class:`PostgresNotInstalled`, :class:`ComponentFailedToStart` (with the log tail)...
    """
    external = external_servers()
    if external is not None:
        return _external_up(*external, timeout=min(cfg.start_timeout, 15.0))

    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # The postgres OS user must reach <state>/postgres.
        cfg.state_dir.chmod(cfg.state_dir.stat().st_mode | 0o055)
    kafka = cfg.kafka()
    pg = cfg.postgres()

    # Ports first, so nothing is started when one of them is taken by someone else.
    kafka_pid = kafka.running_pid()
    pg_pid = pg.running_pid()
    if kafka_pid is None:
        _require_free(cfg.kafka_port, "LOCAL_KAFKA_PORT", "Kafka")
        _require_free(cfg.kafka_controller_port, "LOCAL_KAFKA_CONTROLLER_PORT", "Kafka controller")
    if pg_pid is None:
        _require_free(cfg.postgres_port, "LOCAL_POSTGRES_PORT", "PostgreSQL")
    stale = [
        name
        for name, pid, same in (
            ("Kafka", kafka_pid, kafka.config_matches()),
            ("PostgreSQL", pg_pid, pg.config_matches()),
        )
        if pid is not None and not same
    ]
    if stale:
        raise StackError(
            f"{' and '.join(stale)} in {cfg.state_dir} already run(s) with other settings "
            "(ports changed?); run `ledgerctl stack down` first, then `stack up` again"
        )

    # Fail fast on missing tools before starting anything.
    bin_dir = find_bin_dir()
    java = kafka_broker.find_java()

    # Kafka: reuse or spawn (do not wait yet; PostgreSQL starts while the JVM boots).
    if kafka_pid is None:
        resolve_kafka_jars(cfg)
        kafka.write_config()
        kafka.format_storage(java)
        kafka_pid = kafka.spawn(java)

    # PostgreSQL: reuse or initdb/start. If it fails, the Kafka JVM keeps running (a later
    # `up` reuses it; `down` stops it).
    if pg_pid is None:
        pg.prepare(bin_dir)
        pg_pid = pg.start(bin_dir, cfg.start_timeout)
        pg.ensure_app_role_and_database(timeout=cfg.start_timeout)
    else:
        try:
            check_postgres(pg.database_url, timeout=5.0, setting="LOCAL_POSTGRES_PORT")
        except StackError:
            pg.ensure_app_role_and_database(timeout=cfg.start_timeout)
    pg.wait_ready(pg_pid, cfg.start_timeout)

    kafka.wait_ready(kafka_pid, cfg.start_timeout)
    kafka_broker.create_acls(kafka.bootstrap, kafka.admin_options(), cfg.start_timeout)
    return StackInfo(
        kafka_bootstrap=kafka.bootstrap,
        database_url=pg.database_url,
        admin_database_url=pg.admin_database_url,
        kafka_pid=kafka_pid,
        postgres_pid=pg_pid,
        state_dir=cfg.state_dir,
        kafka_log=kafka.server_log,
        postgres_log=pg.log_file,
        logins=pg.login_urls(),
        kafka_env={name: kafka.client_env(name) for name in kafka_broker.PRINCIPALS},
    )


def _require_free(port: int, setting: str, component: str) -> None:
    if processes.port_in_use(port):
        raise PortInUse(setting, port, component)


def stack_down(cfg: StackConfig) -> None:
    """Stop this state dir's Kafka and PostgreSQL (SIGTERM, wait, SIGKILL). Idempotent.

    Only processes started from ``cfg.state_dir`` are signalled. With external servers
    (KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL set) there is nothing of ours to stop, but a
    stack in the state dir is still stopped if one is running.
    """
    kafka = cfg.kafka()
    pg = cfg.postgres()
    try:
        bin_dir: Path | None = find_bin_dir()
    except PostgresNotInstalled:
        bin_dir = None
    kafka.stop(cfg.stop_timeout)
    pg.stop(bin_dir, cfg.stop_timeout)


def stack_status(cfg: StackConfig) -> list[ComponentStatus]:
    """Each component with address, pid and health (a real round-trip, 5 s timeout)."""
    external = external_servers()
    if external is not None:
        bootstrap, dsn = external
        return [
            _probe("kafka", bootstrap, None, lambda: _kafka_detail(bootstrap), "external"),
            _probe(
                "postgres",
                mask_password(dsn),
                None,
                lambda: f"PostgreSQL {check_postgres(dsn, timeout=5.0)}",
                "external",
            ),
        ]
    kafka = cfg.kafka()
    pg = cfg.postgres()
    return [
        _local_status(
            "kafka",
            kafka.bootstrap,
            kafka.running_pid(),
            kafka.server_log,
            lambda: _kafka_detail(kafka.bootstrap, kafka.admin_options()),
        ),
        _local_status(
            "postgres",
            pg.address,
            pg.running_pid(),
            pg.log_file,
            lambda: (
                f"PostgreSQL {check_postgres(pg.database_url, timeout=5.0)}, data {pg.data_dir}"
            ),
        ),
    ]


def _local_status(
    name: str, address: str, pid: int | None, log_file: Path, check: Callable[[], str]
) -> ComponentStatus:
    """A component the stack runs itself: "not running" without a process, else probed."""
    if pid is None:
        return ComponentStatus(name, address, None, False, "not running", log_file)
    return _probe(name, address, pid, check, "")


def _kafka_detail(bootstrap: str, options: dict[str, Any] | None = None) -> str:
    info = check_kafka(bootstrap, timeout=5.0, options=options)
    brokers = len(info.get("brokers", []))
    return f"Kafka {KAFKA_VERSION} KRaft, cluster {info.get('cluster_id')}, {brokers} broker(s)"


def _probe(
    name: str, address: str, pid: int | None, check: Callable[[], str], prefix: str
) -> ComponentStatus:
    try:
        detail = str(check())
        healthy = True
    except StackError as exc:
        detail = f"running but unhealthy: {exc}" if pid else str(exc)
        healthy = False
    if prefix:
        detail = f"{prefix}: {detail}"
    return ComponentStatus(name, address, pid, healthy, detail)


def format_status(statuses: list[ComponentStatus]) -> str:
    """A small aligned table for ``ledgerctl stack status``."""
    rows = [("COMPONENT", "ADDRESS", "PID", "HEALTH", "DETAIL")]
    for s in statuses:
        health = "healthy" if s.healthy else ("unhealthy" if s.pid else "down")
        rows.append((s.name, s.address, str(s.pid or "-"), health, s.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        for row in rows
    )


def log_tails(cfg: StackConfig, lines: int = 30) -> dict[str, str]:
    """The last lines of each component's log (for test failure reports)."""
    return {"kafka": cfg.kafka().log_tail(lines), "postgres": cfg.postgres().log_tail(lines)}
