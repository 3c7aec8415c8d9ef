"""The issuer gateway served in-process on a free port, its tokens, wire completions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest

from learnerledger.gateway.service import RunningGateway, gateway
from learnerledger.gateway.settings import GatewaySettings
from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.v1 import common_pb2
from tests.support.ledger import seed_catalog

ALICE, BOB = "111111111111", "222222222222"


@pytest.fixture(scope="module")
async def tokens(database_url: str) -> dict[str, str]:
    await seed_catalog(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        _, swayam = await catalog.issue_token(connection, PrincipalKind.ISSUER, "swayam")
        _, du = await catalog.issue_token(connection, PrincipalKind.UNIVERSITY, "du")
    finally:
        await connection.close()
    return {"swayam": swayam, "du": du}


def gateway_settings(
    kafka_bootstrap: str, database_url: str, topics: Any, **overrides: Any
) -> GatewaySettings:
    """The gateway's settings on the test's topics and database, on free ports
    (``overrides``: other settings, e.g. the TLS files)."""
    defaults: dict[str, Any] = {"grpc_port": 0, "metrics_port": 0, "shutdown_grace_s": 5}
    return GatewaySettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        topic_completions=topics.completions,
        topic_ledger_entries=topics.ledger_entries,
        topic_completions_dlq=topics.completions_dlq,
        topic_partitions=topics.partitions,
        **(defaults | overrides),
    )


@contextlib.asynccontextmanager
async def running_gateway(
    kafka_bootstrap: str, database_url: str, topics: Any, **overrides: Any
) -> AsyncIterator[tuple[RunningGateway, grpc.aio.Channel]]:
    settings = gateway_settings(kafka_bootstrap, database_url, topics, **overrides)
    async with (
        gateway(settings) as running,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        yield running, channel


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def completion(
    completion_id: str, learner_id: str = ALICE, course_id: str = "ml-101", **extra: Any
) -> common_pb2.Completion:
    c = common_pb2.Completion(
        completion_id=completion_id,
        learner_id=learner_id,
        course_id=course_id,
        result=common_pb2.COMPLETION_RESULT_PASS,
        score=82.5,
        evidence_url=f"https://certs.example.org/{completion_id}",
        **extra,
    )
    c.completed_at.FromDatetime(datetime(2026, 3, 1, 12, tzinfo=UTC))
    return c


async def collect(call: Any, sink: list[Any]) -> None:
    async for item in call:
        sink.append(item)


def self_signed_cert(
    name: str, *, issuer: tuple[Any, Any] | None = None, ca: bool = False
) -> tuple[Any, Any]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_cert, signer_key = issuer if issuer else (None, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_cert.subject if signer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signer_key, hashes.SHA256()), key
