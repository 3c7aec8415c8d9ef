"""Errors raised while starting, checking or stopping the local stack.

Every message says what to do next and names the setting to change (``LOCAL_KAFKA_PORT``,
``LOCAL_POSTGRES_PORT``, ``DATABASE_URL``...). Catch :class:`StackError` to handle them all.
"""

from __future__ import annotations


class StackError(RuntimeError):
    """Base class: the local stack could not be started, checked or stopped."""


class PortInUse(StackError):
    """A port the stack needs is taken by something that is not this stack's component."""

    def __init__(self, setting: str, port: int, component: str = "") -> None:
        self.setting = setting
        self.port = port
        self.component = component
        what = f" for {component}" if component else ""
        super().__init__(
            f"port {port} on 127.0.0.1{what} is already in use by another process; "
            f"stop that process or choose a free port with {setting}=<port>"
        )


class JavaMissing(StackError):
    """No usable ``java`` (17 or newer) on PATH / JAVA_HOME."""

    def __init__(self, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(
            "Kafka 4.x needs Java 17 or newer and none was found"
            f"{extra}; install it (Debian: apt-get install -y openjdk-17-jre-headless, "
            "or run scripts/bootstrap.sh) or set JAVA_HOME"
        )


class MavenMissing(StackError):
    """No ``mvn`` on PATH: the Kafka jars cannot be resolved."""

    def __init__(self) -> None:
        super().__init__(
            "Maven (mvn) is needed once to download the Kafka jars and was not found on PATH; "
            "install it (Debian: apt-get install -y maven, or run scripts/bootstrap.sh), "
            "or point LOCAL_KAFKA_LIBS_DIR at a directory that already holds the jars"
        )


class KafkaJarsUnavailable(StackError):
    """Maven ran but the Kafka jars could not be resolved (network, repository, pom)."""


class PostgresNotInstalled(StackError):
    """PostgreSQL server binaries (initdb, pg_ctl) are not installed."""

    def __init__(self, searched: str = "") -> None:
        where = f" (looked in {searched})" if searched else ""
        super().__init__(
            f"PostgreSQL server binaries (initdb, pg_ctl) were not found{where}; install them "
            "with `sudo DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql` "
            "(scripts/bootstrap.sh does this), or set LOCAL_POSTGRES_BIN_DIR to the directory "
            "holding initdb and pg_ctl, or use external servers by setting both "
            "KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL"
        )


class ComponentFailedToStart(StackError):
    """A component did not become ready; carries the tail of its log."""

    def __init__(self, component: str, log_tail: str, reason: str = "") -> None:
        self.component = component
        self.log_tail = log_tail
        self.reason = reason
        why = f": {reason}" if reason else ""
        tail = log_tail.rstrip() or "(log is empty)"
        super().__init__(
            f"{component} failed to start{why}. "
            "If it is only slow, raise LOCAL_STACK_START_TIMEOUT (seconds). "
            f"Last lines of its log:\n{tail}"
        )


class ComponentUnreachable(StackError):
    """An external (or running) server did not answer."""


class PostgresAuthFailed(StackError):
    """PostgreSQL rejected the user name or password in a connection URL."""


class StateDirUnusable(StackError):
    """The state directory cannot be used (permissions, path too long...)."""
