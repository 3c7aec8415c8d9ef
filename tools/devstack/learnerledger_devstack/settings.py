"""Settings of the development stack, read from the environment.

Names carry the prefix ``LOCAL_`` except the state directory, which keeps its historical name::

    LEDGER_STATE_DIR              state directory (default <repo>/.state)
    LOCAL_KAFKA_PORT              Kafka client listener (127.0.0.1), default 9092
    LOCAL_KAFKA_CONTROLLER_PORT   KRaft controller listener, default 9093
    LOCAL_POSTGRES_PORT           PostgreSQL on 127.0.0.1, default 5432
    LOCAL_STACK_START_TIMEOUT     seconds each component may take to become ready (default 90)
    LOCAL_STACK_STOP_TIMEOUT      seconds to wait after SIGTERM before SIGKILL (default 30)
    LOCAL_KAFKA_LIBS_DIR          where the Kafka jars are cached (default <state>/kafka-libs)
    LOCAL_KAFKA_POM               the pom to resolve (default deploy/local/kafka/pom.xml)
    LOCAL_POSTGRES_BIN_DIR        directory with initdb/pg_ctl (default: PATH, Debian/RPM dirs)

An empty variable counts as unset. Shared settings the stack also reads
(``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``, ``ADMIN_DATABASE_URL``: external servers) are
described in :mod:`learnerledger_devstack.stack`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from learnerledger_devstack.stack_errors import StackError

ENV_PREFIX = "LOCAL_"
STATE_DIR_ENV = "LEDGER_STATE_DIR"
#: The repository this package runs from (tools/devstack/learnerledger_devstack/ -> repo).
REPO_ROOT = Path(__file__).resolve().parents[3]


class DevStackSettings(BaseSettings):
    """Where the local stack keeps its state, its ports and timeouts, and its tools."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    state_dir: Path | None = Field(None, validation_alias=STATE_DIR_ENV)
    kafka_port: int = Field(9092, gt=0, lt=65536)
    kafka_controller_port: int = Field(9093, gt=0, lt=65536)
    postgres_port: int = Field(5432, gt=0, lt=65536)
    stack_start_timeout: float = Field(90.0, gt=0)
    stack_stop_timeout: float = Field(30.0, gt=0)
    kafka_libs_dir: Path | None = None
    kafka_pom: Path | None = None
    postgres_bin_dir: Path | None = None

    @property
    def effective_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else REPO_ROOT / ".state"


def env_name(field: str) -> str:
    """The environment variable of a :class:`DevStackSettings` field."""
    if field in ("state_dir", STATE_DIR_ENV):
        return STATE_DIR_ENV
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings() -> DevStackSettings:
    """The settings from the environment; a bad value raises :class:`StackError` naming it."""
    try:
        return DevStackSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{env_name(str(error['loc'][0])) if error['loc'] else 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise StackError(f"bad development stack setting: {problems}") from exc
