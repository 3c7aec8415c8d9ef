"""Settings of the query API (prefix ``QUERY_``) and of the projection worker (``PROJECTOR_``)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from learnerledger.config import PROJECTOR_CONSUMER_GROUP, CommonSettings


class QuerySettings(CommonSettings):
    """``ledgerctl serve query``: TranscriptQueryService over gRPC."""

    model_config = SettingsConfigDict(env_prefix="QUERY_", extra="ignore", populate_by_name=True)

    grpc_port: int = Field(50052, ge=0, le=65535)
    grpc_bind: str = "127.0.0.1"
    health_port: int | None = Field(None, ge=1, le=65535)  # plaintext health only (probes)
    metrics_port: int = Field(9103, ge=0, le=65535)
    #: The verifiable log over HTTP (GET /checkpoint, /proof/inclusion, /proof/consistency;
    #: public, read-only): None (unset) = off, 0 = any free port. HTTPS when the TLS files are
    #: set (the same certificate as the gRPC API).
    http_port: int | None = Field(None, ge=0, le=65535)
    http_bind: str = "127.0.0.1"
    database_role: str | None = "ll_query"
    pool_max_size: int = Field(10, ge=1)
    watch_poll_ms: int = Field(200, ge=10)
    min_position_poll_ms: int = Field(50, ge=5)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: Who read my record: reads by universities and admins are kept this many days, then
    #: deleted by the query service every access_log_prune_interval_s (QUERY_ACCESS_LOG_*).
    access_log_retention_days: float = Field(365.0, gt=0, le=3650)
    access_log_prune_interval_s: float = Field(3600.0, gt=0)
    #: The web pages on the HTTP API (/verify, /learner; on whenever http_port is set): the
    #: checkpoint keys the verification page trusts, as note verifier keys
    #: (``ledgerctl proof vkey``), separated by commas. Empty: every proof is "unknown key".
    web_checkpoint_vkeys: str = ""
    #: Where the learner's page sends consent changes (LearnerConsentService, ledger process).
    web_ledger_address: str = "127.0.0.1:50053"
    #: The base URL of share links and QR codes (https://verify.example.in); unset: the
    #: address the browser used.
    web_public_url: str | None = None
    #: An active credit whose validity ends within this many days is highlighted.
    web_expiring_soon_days: int = Field(180, ge=1, le=3650)

    @field_validator("web_checkpoint_vkeys")
    @classmethod
    def _vkeys(cls, value: str) -> str:
        from learnerledger.domain.signed_note import MalformedNote, parse_verifier_key

        for key in re.split(r"[,\s]+", value.strip()):
            if key:
                try:
                    parse_verifier_key(key)
                except MalformedNote as exc:
                    raise ValueError(f"{key[:40]!r} is not a note verifier key: {exc}") from exc
        return value

    #: Credits as verifiable credentials (ExportCredential, ExportTranscript, the DID document
    #: and status lists over HTTP): the Ed25519 key that signs them (hex seed, as written by
    #: ``ledgerctl keys generate``; its own key, never the checkpoint key). Unset: off.
    credential_signing_key_file: Path | None = None
    #: The public base URL of the HTTP API; the issuer is its did:web identifier
    #: (https://credentials.example.in -> did:web:credentials.example.in). Unset: the HTTP
    #: API's own address (http://HTTP_BIND:PORT), for the local stack.
    credential_public_url: str | None = None
    credential_issuer_name: str = Field("Learner Ledger", min_length=1, max_length=200)

    @field_validator("credential_public_url", "web_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return value.rstrip("/")


class ProjectorSettings(CommonSettings):
    """``ledgerctl serve projector``: folds ledger.entries.v1 into the read model."""

    model_config = SettingsConfigDict(
        env_prefix="PROJECTOR_", extra="ignore", populate_by_name=True
    )

    consumer_group: str = PROJECTOR_CONSUMER_GROUP
    batch_max_records: int = Field(2000, ge=1)
    batch_wait_ms: int = Field(50, ge=0)
    session_timeout_ms: int = Field(10_000, ge=6_000)
    gap_retry_ms: int = Field(500, ge=10)
    metrics_port: int = Field(9104, ge=0, le=65535)
    grpc_port: int = Field(50054, ge=0, le=65535)
    grpc_bind: str = "127.0.0.1"
    database_role: str | None = "ll_projector"
