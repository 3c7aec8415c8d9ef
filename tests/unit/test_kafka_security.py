"""The one adapter from settings to aiokafka client options (learnerledger.kafka.security)."""

from __future__ import annotations

import ssl

import pytest

from learnerledger.config import CommonSettings
from learnerledger.kafka.security import KafkaCredentialsMissing, client_options


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
