"""The local Apache Kafka broker: jars from Maven, KRaft combined broker+controller, one JVM.

Layout under the state directory::

    <state>/kafka-libs/            jars (dependency:copy-dependencies) + .pom.sha256 stamp
    <state>/kafka.pid              pid of the broker JVM
    <state>/kafka/server.properties, log4j2.properties, tools-log4j2.properties, cluster.id
    <state>/kafka/data/            log.dirs (metadata log and topic partitions)
    <state>/kafka/logs/server.log  broker log (log4j2, rolling); stdout.log for the JVM's own output

The broker is started with a ``-Dlearnerledger.stack.dir=<state>`` system property so that
``stop`` only ever signals a JVM this state directory started.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from learnerledger.kafka.security import client_options
from learnerledger_devstack import processes
from learnerledger_devstack.settings import REPO_ROOT, load_settings
from learnerledger_devstack.stack_errors import (
    ComponentFailedToStart,
    ComponentUnreachable,
    JavaMissing,
    KafkaJarsUnavailable,
    MavenMissing,
    StackError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

KAFKA_VERSION = "4.3.1"
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
PRODUCER_PERF_MAIN = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF_MAIN = "org.apache.kafka.tools.ConsumerPerformance"
API_VERSIONS_MAIN = "org.apache.kafka.tools.BrokerApiVersionsCommand"
BROKER_HEAP = ("-Xms256m", "-Xmx512m")
MARKER_PROPERTY = "learnerledger.stack.dir"

SASL_MECHANISM = "SCRAM-SHA-512"
ADMIN_PRINCIPAL = "admin"
#: The local stack's Kafka principals. ``admin`` is a super user (topic creation, ``ledgerctl``
#: lag / replay / re-drive, tests, benchmarks); the others get only the ACLs below. The query
#: service and the migrations have no Kafka access.
PRINCIPALS = (ADMIN_PRINCIPAL, "gateway", "ledger", "projector")

# Kafka protocol codes (org.apache.kafka.common.acl / resource).
_TOPIC, _GROUP = 2, 3
_PREFIXED = 4
_READ, _WRITE, _DESCRIBE = 3, 4, 8
_ALLOW = 3

#: (principal, resource type, name prefix, operations). PREFIXED, so that the suffixed topics
#: and groups the tests create (``completions.v1.t<hex>``, ``ledger-<topic>``) are covered;
#: ``completions.v1`` does not prefix ``completions.dlq.v1``. An idempotent producer needs only
#: WRITE on a topic (KIP-679, Kafka 3.0+), not IdempotentWrite on the cluster.
ACLS: tuple[tuple[str, int, str, tuple[int, ...]], ...] = (
    ("gateway", _TOPIC, "completions.v1", (_WRITE, _DESCRIBE)),
    # The ledger consumes completions, and writes consent events there (GrantConsent).
    ("ledger", _TOPIC, "completions.v1", (_READ, _WRITE, _DESCRIBE)),
    ("ledger", _GROUP, "ledger", (_READ, _DESCRIBE)),
    # It publishes entries and dead letters, and StartReplay --source kafka reads the entries.
    ("ledger", _TOPIC, "ledger.entries.v1", (_READ, _WRITE, _DESCRIBE)),
    ("ledger", _TOPIC, "completions.dlq.v1", (_WRITE, _DESCRIBE)),
    # The checkpointer appends the signed tree heads; witnesses read them (admin
    # here; in Kubernetes a read-only KafkaUser).
    ("ledger", _TOPIC, "ledger.checkpoints.v1", (_WRITE, _DESCRIBE)),
    ("projector", _TOPIC, "ledger.entries.v1", (_READ, _DESCRIBE)),
    ("projector", _GROUP, "projector", (_READ, _DESCRIBE)),
)
_STAMP = ".pom.sha256"


def default_pom() -> Path:
    """``deploy/local/kafka/pom.xml`` in the repository (override: ``LOCAL_KAFKA_POM``)."""
    override = load_settings().kafka_pom
    return override if override else REPO_ROOT / "deploy" / "local" / "kafka" / "pom.xml"


# --------------------------------------------------------------------------------------------
# Java and Maven


def find_java() -> str:
    """Path of a ``java`` that is version 17 or newer; raises :class:`JavaMissing` otherwise."""
    candidates: list[str] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    for java in candidates:
        if not os.access(java, os.X_OK):
            continue
        major = java_major_version(java)
        if major is not None and major >= 17:
            return java
        if major is not None:
            raise JavaMissing(f"{java} is Java {major}")
    raise JavaMissing("no java on PATH or in JAVA_HOME")


def java_major_version(java: str) -> int | None:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):  # 1.8 -> 8
        major = int(match.group(2))
    return major


def pom_hash(pom: Path) -> str:
    digest = hashlib.sha256(pom.read_bytes())
    digest.update(b"\0copy-dependencies-v1")
    return digest.hexdigest()


def resolve_jars(libs_dir: Path, pom: Path | None = None) -> Path:
    """Make sure ``libs_dir`` holds the jars of ``pom``; run Maven only if the pom changed.

    The result is cached with a hash of the pom (``<libs_dir>/.pom.sha256``). Concurrent callers
    (two test sessions) serialise on a lock file; the new jars are moved into place atomically.
    """
    pom = pom or default_pom()
    if not pom.is_file():
        raise KafkaJarsUnavailable(f"Kafka pom not found at {pom}; set LOCAL_KAFKA_POM")
    wanted = pom_hash(pom)
    if _jars_current(libs_dir, wanted):
        return libs_dir
    libs_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = libs_dir.parent / f".{libs_dir.name}.lock"
    import fcntl

    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _jars_current(libs_dir, wanted):
            return libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise MavenMissing()
        staging = Path(tempfile.mkdtemp(prefix=f".{libs_dir.name}.", dir=libs_dir.parent))
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise KafkaJarsUnavailable(
                "Maven took longer than 15 minutes; check the network"
            ) from exc
        if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            output = (done.stdout + done.stderr).strip().splitlines()[-30:]
            raise KafkaJarsUnavailable(
                f"`{' '.join(cmd)}` failed (exit {done.returncode}); Maven Central must be "
                "reachable (a proxy goes in ~/.m2/settings.xml). Last lines:\n" + "\n".join(output)
            )
        (staging / _STAMP).write_text(wanted + "\n")
        old = libs_dir.with_name(f".{libs_dir.name}.old-{os.getpid()}")
        if libs_dir.exists():
            libs_dir.rename(old)
        staging.rename(libs_dir)
        libs_dir.chmod(0o755)
        shutil.rmtree(old, ignore_errors=True)
    return libs_dir


def _jars_current(libs_dir: Path, wanted: str) -> bool:
    stamp = libs_dir / _STAMP
    try:
        return stamp.read_text().strip() == wanted and any(libs_dir.glob("kafka_2.13-*.jar"))
    except OSError:
        return False


def class_path(libs_dir: Path) -> str:
    """The JVM class path for the resolved jars (a ``dir/*`` wildcard)."""
    return f"{libs_dir}/*"


# --------------------------------------------------------------------------------------------
# The broker


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding (22 characters).

    Like Kafka's own ``Uuid.randomUuid``, it never begins with "-", so the id also reads well on
    any command line; :meth:`KafkaBroker.format_storage` passes it as ``--cluster-id=ID`` anyway,
    which is safe for ids written by older versions.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class KafkaBroker:
    """One broker under a state directory."""

    state_dir: Path
    libs_dir: Path
    port: int
    controller_port: int

    @property
    def home(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    @property
    def credentials_file(self) -> Path:
        return self.home / "credentials.json"

    def credentials(self) -> dict[str, str]:
        """SCRAM-SHA-512 password by principal (:data:`PRINCIPALS`), generated once, 0600."""
        from learnerledger_devstack.db_logins import load_or_create_secrets

        return load_or_create_secrets(self.credentials_file, list(PRINCIPALS))

    def client_env(self, principal: str) -> dict[str, str]:
        """The KAFKA_* settings with which a client authenticates as ``principal``."""
        return {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": SASL_MECHANISM,
            "KAFKA_SASL_USERNAME": principal,
            "KAFKA_SASL_PASSWORD": self.credentials()[principal],
        }

    def admin_options(self) -> dict[str, Any]:
        """aiokafka client options as the super user ``admin``."""
        from learnerledger.config import CommonSettings

        return client_options(CommonSettings.model_validate(self.client_env(ADMIN_PRINCIPAL)))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def marker(self) -> str:
        return f"-D{MARKER_PROPERTY}={self.state_dir}"

    def running_pid(self) -> int | None:
        """Pid of this state dir's broker JVM if it is running."""
        return processes.owned_pid(self.pid_file, self.marker)

    def config_matches(self) -> bool:
        """True if the running broker was started with the settings we would write now."""
        try:
            return self.properties_file.read_text() == self.server_properties()
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        text = processes.tail(self.server_log, lines)
        extra = processes.tail(self.stdout_log, lines)
        if extra.strip():
            text = (text + "\n--- stdout/stderr ---\n" if text else "") + extra
        return text

    # -- configuration ---------------------------------------------------------------------

    def server_properties(self) -> str:
        host = "127.0.0.1"
        settings: dict[str, str | int] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            # Static single-voter quorum: the controller port may change between runs.
            "controller.quorum.voters": f"1@{host}:{self.controller_port}",
            # Clients (and the broker itself) authenticate with SCRAM-SHA-512 on the one client
            # listener; the controller listener stays on 127.0.0.1 and is for KRaft only.
            "listeners": (
                f"SASL_PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}"
            ),
            "advertised.listeners": f"SASL_PLAINTEXT://{host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": SASL_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN_PRINCIPAL}" password="{self.credentials()[ADMIN_PRINCIPAL]}";'
            ),
            # Every request is authorized; without an ACL nothing is allowed. ANONYMOUS is the
            # principal of the PLAINTEXT controller listener only (KRaft's own traffic).
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN_PRINCIPAL};User:ANONYMOUS",
            "log.dirs": str(self.data_dir),
            "num.partitions": 12,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 12,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 12,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
            "group.initial.rebalance.delay.ms": 0,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
            "log.retention.hours": 168,
            "log.segment.bytes": 104857600,
        }
        lines = [
            "# Generated by learnerledger_devstack.kafka_broker; `stack up` overwrites edits.",
            *(f"{key}={value}" for key, value in settings.items()),
        ]
        return "\n".join(lines) + "\n"

    def log4j2_properties(self, *, file: Path | None, level: str = "INFO") -> str:
        if file is None:  # tools: warnings to stderr
            return "\n".join(
                [
                    "status = error",
                    "appender.err.type = Console",
                    "appender.err.name = STDERR",
                    "appender.err.target = SYSTEM_ERR",
                    "appender.err.layout.type = PatternLayout",
                    "appender.err.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = WARN",
                    "rootLogger.appenderRef.err.ref = STDERR",
                    "",
                ]
            )
        return "\n".join(
            [
                "status = error",
                "appender.file.type = RollingFile",
                "appender.file.name = FILE",
                f"appender.file.fileName = {file}",
                f"appender.file.filePattern = {file}.%i",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "appender.file.policies.type = Policies",
                "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
                "appender.file.policies.size.size = 20MB",
                "appender.file.strategy.type = DefaultRolloverStrategy",
                "appender.file.strategy.max = 3",
                f"rootLogger.level = {level}",
                "rootLogger.appenderRef.file.ref = FILE",
                # The request logger is very chatty at DEBUG; keep it quiet.
                "logger.request.name = kafka.request.logger",
                "logger.request.level = WARN",
                "",
            ]
        )

    def write_config(self) -> None:
        for directory in (self.home, self.data_dir, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # It holds the admin principal's password.
        descriptor = os.open(self.properties_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as sink:
            sink.write(self.server_properties())
        self.properties_file.chmod(0o600)
        (self.home / "log4j2.properties").write_text(self.log4j2_properties(file=self.server_log))
        (self.home / "tools-log4j2.properties").write_text(self.log4j2_properties(file=None))

    def jvm_args(self, *, log4j: Path) -> list[str]:
        return [
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.log_dir}",
        ]

    def format_storage(self, java: str) -> None:
        """Format ``log.dirs`` on first start (KRaft needs a cluster id written to disk)."""
        if (self.data_dir / "meta.properties").exists():
            return
        id_file = self.home / "cluster.id"
        if id_file.exists():
            cluster_id = id_file.read_text().strip()
        else:
            cluster_id = new_cluster_id()
            id_file.write_text(cluster_id + "\n")
        cmd = [
            java,
            *self.jvm_args(log4j=self.home / "tools-log4j2.properties"),
            "-cp",
            class_path(self.libs_dir),
            STORAGE_TOOL_MAIN,
            "format",
            # One argument, "--cluster-id=ID": an id that begins with "-" (URL-safe base64 can)
            # would otherwise be read as an option ("expected one argument").
            f"--cluster-id={cluster_id}",
            # Each principal's SCRAM credentials, written into the metadata at format time.
            *(
                f"--add-scram={SASL_MECHANISM}=[name={name},password={password}]"
                for name, password in self.credentials().items()
            ),
            "-c",
            str(self.properties_file),
            "--ignore-formatted",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise ComponentFailedToStart(
                "kafka",
                (done.stdout + done.stderr)[-4000:],
                reason=f"formatting storage in {self.data_dir} failed (exit {done.returncode})",
            )

    # -- lifecycle -------------------------------------------------------------------------

    def spawn(self, java: str) -> int:
        """Start the broker JVM detached (own session); return its pid without waiting."""
        cmd = [
            java,
            *BROKER_HEAP,
            self.marker,
            *self.jvm_args(log4j=self.home / "log4j2.properties"),
            "-cp",
            class_path(self.libs_dir),
            BROKER_MAIN,
            str(self.properties_file),
        ]
        with self.stdout_log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
                close_fds=True,
            )
        processes.write_pid(self.pid_file, proc.pid)
        return proc.pid

    def wait_ready(self, pid: int, timeout: float) -> dict[str, Any]:
        """Poll with a real metadata round-trip until the broker answers or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while True:
            if not processes.is_alive(pid):
                raise ComponentFailedToStart(
                    "kafka", self.log_tail(), reason=f"the broker JVM (pid {pid}) exited"
                )
            try:
                return check_kafka(
                    self.bootstrap,
                    timeout=min(5.0, max(1.0, timeout)),
                    options=self.admin_options(),
                )
            except StackError as exc:
                cause = exc.__cause__
                last_error = f"{type(cause).__name__}: {cause}" if cause else str(exc)
            if time.monotonic() >= deadline:
                raise ComponentFailedToStart(
                    "kafka",
                    self.log_tail(),
                    reason=f"no metadata answer from {self.bootstrap} within {timeout:.0f}s "
                    f"({last_error})",
                )
            time.sleep(0.5)

    def stop(self, timeout: float) -> int | None:
        """SIGTERM (controlled shutdown), wait, then SIGKILL. Returns the pid it stopped."""
        pid = self.running_pid()
        if pid is not None:
            processes.terminate(pid, timeout=timeout)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return pid


# --------------------------------------------------------------------------------------------
# Checks and tools


def check_kafka(
    bootstrap: str, timeout: float = 5.0, *, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One metadata round-trip to ``bootstrap``; returns describe_cluster's answer.

    ``options``: client security options (default: the environment's, ``client_options()``).

    Raises :class:`ComponentUnreachable` (naming ``KAFKA_BOOTSTRAP_SERVERS``) on failure.
    """
    try:
        with _quiet_aiokafka():
            return processes.run_coro(_describe_cluster(bootstrap, timeout, options))
    except Exception as exc:
        raise ComponentUnreachable(
            f"Kafka at {bootstrap} did not answer a metadata request within {timeout:.0f}s "
            f"({type(exc).__name__}: {exc}); check KAFKA_BOOTSTRAP_SERVERS / LOCAL_KAFKA_PORT "
            "or start the stack with `ledgerctl stack up`"
        ) from exc


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """aiokafka logs every refused connection at ERROR; a probe reports failure itself."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def _describe_cluster(
    bootstrap: str, seconds: float, options: dict[str, Any] | None
) -> dict[str, Any]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="ledgerctl-stack-check",
        request_timeout_ms=max(1000, int(seconds * 1000)),
        **(options if options is not None else client_options()),
    )
    try:
        async with asyncio.timeout(seconds):
            await admin.start()
            info: dict[str, Any] = await admin.describe_cluster()
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    if not info.get("brokers"):
        raise ComponentUnreachable(f"Kafka at {bootstrap} reports no live brokers yet")
    if info.get("controller_id", -1) == -1:
        raise ComponentUnreachable(f"Kafka at {bootstrap} has no active controller yet")
    return info


def create_acls(bootstrap: str, options: dict[str, Any], timeout: float = 30.0) -> None:
    """Create :data:`ACLS` (idempotent: Kafka keeps one copy of an identical binding)."""
    with _quiet_aiokafka():
        processes.run_coro(_create_acls(bootstrap, options, timeout))


async def _create_acls(bootstrap: str, options: dict[str, Any], seconds: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.protocol.admin import CreateAclsRequest

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="ledgerctl-acls", **options)
    try:
        async with asyncio.timeout(seconds):
            await admin.start()
            for principal, resource, name, operations in ACLS:
                for operation in operations:
                    request = CreateAclsRequest(
                        resource, name, _PREFIXED, f"User:{principal}", "*", operation, _ALLOW
                    )
                    response = await admin._send_request(request)
                    for error_code, message in response.creation_responses:
                        if error_code:
                            raise ComponentUnreachable(
                                f"creating the ACL {principal} {operation} on {name} failed: "
                                f"error {error_code} {message}"
                            )
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def run_tool(
    libs_dir: Path,
    main_class: str,
    args: list[str],
    *,
    log4j: Path | None = None,
    heap: str = "-Xmx512m",
    timeout: float | None = None,
    check: bool = True,
    capture: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a Kafka command-line main class (e.g. :data:`PRODUCER_PERF_MAIN`) on the jars."""
    java = find_java()
    cmd = [java, heap, "-Djava.awt.headless=true"]
    if log4j is not None:
        cmd.append(f"-Dlog4j2.configurationFile={log4j}")
    cmd += ["-cp", class_path(libs_dir), main_class, *args]
    return subprocess.run(
        cmd,
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=check,
        stdin=subprocess.DEVNULL,
    )
