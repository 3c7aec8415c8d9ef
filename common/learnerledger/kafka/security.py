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


_JAAS_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def java_client_properties(settings: CommonSettings | None = None) -> str:
    """The same settings as a Java client properties file, for Kafka's own tools
    (``--producer.config``, ``--command-config``): what :func:`client_options` gives aiokafka."""
    settings = settings if settings is not None else CommonSettings()
    options = client_options(settings)
    lines = [f"security.protocol={options['security_protocol']}"]
    if "sasl_mechanism" in options:
        mechanism = options["sasl_mechanism"]

        def quoted(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines += [
            f"sasl.mechanism={mechanism}",
            f"sasl.jaas.config={_JAAS_LOGIN_MODULES[mechanism]} required "
            f"username={quoted(options['sasl_plain_username'])} "
            f"password={quoted(options['sasl_plain_password'])};",
        ]
    if options["security_protocol"] == "SASL_SSL" and settings.kafka_ssl_cafile:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={settings.kafka_ssl_cafile}"]
    return "\n".join(lines) + "\n"
