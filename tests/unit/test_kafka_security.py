"""The one adapter from settings to aiokafka client options (learnerledger.kafka.security)."""

from __future__ import annotations

import ssl

import certifi
import pytest

from learnerledger.config import CommonSettings
from learnerledger.kafka.security import (
    KafkaCredentialsMissing,
    client_options,
    java_client_properties,
)


@pytest.fixture(autouse=True)
def no_kafka_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests pass every setting themselves; the session's stack exports its Kafka admin
    credentials (tests/conftest.py), which would otherwise fill in the rest."""
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
                 "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CAFILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_plaintext_by_default() -> None:
    assert client_options(CommonSettings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_scram_carries_the_principal_and_password() -> None:
    settings = CommonSettings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_USERNAME="gateway",
        KAFKA_SASL_PASSWORD="s3cret",
    )
    assert client_options(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "gateway",
        "sasl_plain_password": "s3cret",
    }
    assert "s3cret" not in repr(settings)


def test_sasl_ssl_adds_a_verifying_tls_context() -> None:
    settings = CommonSettings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_USERNAME="ledger", KAFKA_SASL_PASSWORD="p"
    )
    context = client_options(settings)["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_sasl_without_credentials_is_refused_with_the_setting_names() -> None:
    with pytest.raises(KafkaCredentialsMissing, match="KAFKA_SASL_USERNAME"):
        client_options(CommonSettings(KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT"))


def test_kafka_tools_get_the_same_settings_as_a_java_properties_file() -> None:
    settings = CommonSettings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_USERNAME="admin",
        KAFKA_SASL_PASSWORD='p"w\\d',
        KAFKA_SSL_CAFILE=certifi.where(),  # any readable PEM bundle
    )
    assert java_client_properties(settings).splitlines() == [
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="admin" password="p\\"w\\\\d";',
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={certifi.where()}",
    ]
    assert java_client_properties(CommonSettings()) == "security.protocol=PLAINTEXT\n"
