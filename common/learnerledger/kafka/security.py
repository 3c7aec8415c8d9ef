"""How every Kafka client authenticates: the one place that turns settings into aiokafka options.

Every ``AIOKafkaProducer``, ``AIOKafkaConsumer`` and ``AIOKafkaAdminClient`` of the services,
``ledgerctl``, the benchmarks and the tests takes ``**client_options(settings)``. The settings
(shared, no prefix; :class:`learnerledger.config.CommonSettings`)::

    KAFKA_SECURITY_PROTOCOL   PLAINTEXT (default) | SASL_PLAINTEXT | SASL_SSL
    KAFKA_SASL_MECHANISM      SCRAM-SHA-512 (default) | SCRAM-SHA-256 | PLAIN
    KAFKA_SASL_USERNAME       the client's principal (gateway, ledger, projector, admin)
    KAFKA_SASL_PASSWORD
    KAFKA_SSL_CAFILE          CA bundle that signed the brokers' certificates (SASL_SSL)
"""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from learnerledger.config import CommonSettings


class KafkaCredentialsMissing(ValueError):
    """A SASL protocol without a user name or password."""


def client_options(settings: CommonSettings | None = None) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client: security protocol, SASL credentials and the
    TLS context. ``settings`` defaults to the environment's."""
    settings = settings if settings is not None else CommonSettings()
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password.get_secret_value()
        if not settings.kafka_sasl_username or not password:
            raise KafkaCredentialsMissing(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password
    if protocol == "SASL_SSL":
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile or None)
    return options
