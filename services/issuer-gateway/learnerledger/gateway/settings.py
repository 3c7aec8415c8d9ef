"""The issuer gateway's settings (environment variables, prefix ``GATEWAY_`` for its own)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from learnerledger.config import CommonSettings


class GatewaySettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    grpc_port: int = Field(50051, ge=0, le=65535)
    grpc_bind: str = "127.0.0.1"
    health_port: int | None = Field(None, ge=1, le=65535)  # plaintext health only (probes)
    metrics_port: int = Field(9101, ge=0, le=65535)
    #: Upper bound on waiting for Kafka's acks=all; past it the call fails with UNAVAILABLE.
    send_timeout_s: float = Field(5.0, gt=0)
    #: Completions of one stream being sent to Kafka at once; a faster writer waits (HTTP/2
    #: flow control), so memory per stream stays bounded.
    max_in_flight: int = Field(256, ge=1, le=100_000)
    #: Per-issuer token bucket: sustained completions (and revocations) per second, and burst.
    rate_limit_per_s: float = Field(2000.0, gt=0)
    rate_limit_burst: int = Field(5000, ge=1)
    max_message_bytes: int = Field(64 * 1024, ge=1024)
    #: How far in the future ``completed_at`` may lie (clocks of partners drift).
    clock_skew_s: float = Field(300.0, ge=0)
    #: How long a token lookup and a course lookup are cached.
    auth_cache_s: float = Field(30.0, ge=0)
    catalog_cache_s: float = Field(10.0, ge=0)
    #: How many recent acks are remembered (per process) for GetCompletionStatus = ACCEPTED.
    recent_acks: int = Field(100_000, ge=0)
    #: Seconds that running calls may take to finish on shutdown.
    shutdown_grace_s: float = Field(10.0, ge=0)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    database_role: str | None = "ll_gateway"
