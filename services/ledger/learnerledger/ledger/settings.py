"""The ledger's settings (environment variables, prefix ``LEDGER_`` for its own)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from learnerledger.config import LEDGER_CONSUMER_GROUP, CommonSettings

# The log's name in its signed tree heads (C2SP tlog-checkpoint origin, and the note key name).
DEFAULT_LOG_ORIGIN = "learnerledger.local/log"


class LedgerSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore", populate_by_name=True)

    consumer_group: str = LEDGER_CONSUMER_GROUP
    batch_max_records: int = Field(2000, ge=1)
    batch_wait_ms: int = Field(50, ge=0)
    session_timeout_ms: int = Field(10_000, ge=6_000)
    relay_batch: int = Field(5000, ge=1)
    relay_idle_ms: int = Field(50, ge=1)
    #: How often the approval fan-out looks for approvals to re-decide completions for.
    approval_fanout_idle_s: float = Field(1.0, gt=0)
    grpc_port: int = Field(50053, ge=0, le=65535)
    grpc_bind: str = "127.0.0.1"
    #: RedemptionService and LearnerConsentService also on this port, without
    #: LedgerAdminService: the port universities and learners reach (deploy/k8s opens it to
    #: them and keeps grpc_port to operators). Unset: they are served on grpc_port only.
    public_grpc_port: int | None = Field(None, ge=0, le=65535)
    health_port: int | None = Field(None, ge=1, le=65535)  # plaintext health only (probes)
    metrics_port: int = Field(9102, ge=0, le=65535)
    #: How far ahead of the ledger's clock a completion date may lie (same rule as the gateway's
    #: GATEWAY_CLOCK_SKEW_S; keep them equal).
    clock_skew_s: float = Field(300.0, ge=0)
    checkpoint_interval_s: float = Field(60.0, gt=0)
    checkpoint_signing_key_file: Path | None = None
    log_origin: str = Field(DEFAULT_LOG_ORIGIN, min_length=1, pattern=r"^[^\s+]+$")
    database_role: str | None = "ll_ledger"
    admin_database_role: str | None = "ll_admin"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
