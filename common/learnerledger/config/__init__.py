"""Settings every service shares: where Kafka and PostgreSQL are, and the topic names.

Each service has one settings object (``GatewaySettings``, ``LedgerSettings``, ``QuerySettings``,
``ProjectorSettings``) that extends :class:`CommonSettings`; all of them read the environment.
Shared names carry no prefix (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``, ``TOPIC_COMPLETIONS``);
a service's own names carry its prefix (``GATEWAY_GRPC_PORT``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://learnerledger:learnerledger@127.0.0.1:5432/learnerledger"
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"

# Consumer groups are part of the contract with operations (lag dashboards, KEDA triggers).
LEDGER_CONSUMER_GROUP = "ledger"
PROJECTOR_CONSUMER_GROUP = "projector"


def _shared(name: str) -> AliasChoices:
    """An environment name shared by every service (no service prefix)."""
    return AliasChoices(name, name.lower())


class CommonSettings(BaseSettings):
    """Connection and topic settings shared by every service and by ``ledgerctl``."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        DEFAULT_KAFKA_BOOTSTRAP, validation_alias=_shared("KAFKA_BOOTSTRAP_SERVERS")
    )
    # How Kafka clients authenticate (learnerledger.kafka.security.client_options).
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=_shared("KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", validation_alias=_shared("KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str = Field("", validation_alias=_shared("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr = Field(
        SecretStr(""), validation_alias=_shared("KAFKA_SASL_PASSWORD")
    )
    kafka_ssl_cafile: str = Field("", validation_alias=_shared("KAFKA_SSL_CAFILE"))
    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias=_shared("DATABASE_URL"))
    topic_completions: str = Field("completions.v1", validation_alias=_shared("TOPIC_COMPLETIONS"))
    topic_ledger_entries: str = Field(
        "ledger.entries.v1", validation_alias=_shared("TOPIC_LEDGER_ENTRIES")
    )
    topic_completions_dlq: str = Field(
        "completions.dlq.v1", validation_alias=_shared("TOPIC_COMPLETIONS_DLQ")
    )
    #: The signed tree heads, in order, for outside parties (witnesses) to follow.
    topic_ledger_checkpoints: str = Field(
        "ledger.checkpoints.v1", validation_alias=_shared("TOPIC_LEDGER_CHECKPOINTS")
    )
    topic_partitions: int = Field(12, ge=1, validation_alias=_shared("TOPIC_PARTITIONS"))
    log_level: str = Field("INFO", validation_alias=_shared("LOG_LEVEL"))
    log_format: str = Field("json", validation_alias=_shared("LOG_FORMAT"))
    #: gRPC servers: how long a client connection may live before the server asks the client to
    #: reconnect (GOAWAY), and how long calls on it may then still run. Rebalances long-lived
    #: streams over replicas behind a TCP load balancer (learnerledger.rpc.server).
    grpc_max_connection_age_s: float = Field(
        600.0, gt=0, validation_alias=_shared("GRPC_MAX_CONNECTION_AGE_S")
    )
    grpc_max_connection_age_grace_s: float = Field(
        60.0, ge=0, validation_alias=_shared("GRPC_MAX_CONNECTION_AGE_GRACE_S")
    )

    #: Learner sign-in (OpenID Connect ID tokens; learnerledger.rpc.learner_tokens). Off while
    #: LEARNER_OIDC_ISSUER is empty: ID tokens are then UNAUTHENTICATED.
    learner_oidc_issuer: str = Field("", validation_alias=_shared("LEARNER_OIDC_ISSUER"))
    learner_oidc_audience: str = Field("", validation_alias=_shared("LEARNER_OIDC_AUDIENCE"))
    learner_oidc_jwks_url: str = Field("", validation_alias=_shared("LEARNER_OIDC_JWKS_URL"))
    learner_oidc_jwks_file: str = Field("", validation_alias=_shared("LEARNER_OIDC_JWKS_FILE"))
    #: The ID token claim that carries the learner's APAAR id.
    learner_id_claim: str = Field("apaar_id", validation_alias=_shared("LEARNER_ID_CLAIM"))
    #: Comma-separated JWS algorithms accepted (public-key algorithms only).
    learner_oidc_algorithms: str = Field(
        "EdDSA,RS256,ES256", validation_alias=_shared("LEARNER_OIDC_ALGORITHMS")
    )
    learner_oidc_leeway_s: float = Field(
        30.0, ge=0, le=300, validation_alias=_shared("LEARNER_OIDC_LEEWAY_S")
    )

    @model_validator(mode="after")
    def _learner_sign_in_is_complete(self) -> CommonSettings:
        if not self.learner_oidc_issuer:
            return self
        if not self.learner_oidc_audience:
            raise ValueError("LEARNER_OIDC_AUDIENCE is required when LEARNER_OIDC_ISSUER is set")
        if bool(self.learner_oidc_jwks_url) == bool(self.learner_oidc_jwks_file):
            raise ValueError(
                "set exactly one of LEARNER_OIDC_JWKS_URL and LEARNER_OIDC_JWKS_FILE "
                "when LEARNER_OIDC_ISSUER is set"
            )
        url = self.learner_oidc_jwks_url
        if url and not (
            url.startswith("https://") or url.startswith(("http://127.0.0.1", "http://localhost"))
        ):
            raise ValueError("LEARNER_OIDC_JWKS_URL must be https:// (http only for localhost)")
        return self

    @field_validator("database_url")
    @classmethod
    def _database_url_is_postgres(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "DATABASE_URL must start with postgresql:// "
                "(for example postgresql://user:password@127.0.0.1:5432/learnerledger)"
            )
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(
                    "KAFKA_BOOTSTRAP_SERVERS must be host:port[,host:port...], "
                    f"got {server.strip()!r}"
                )
        return value

    @property
    def topics(self) -> tuple[str, str, str]:
        """Every topic the services produce or consume."""
        return (self.topic_completions, self.topic_ledger_entries, self.topic_completions_dlq)
