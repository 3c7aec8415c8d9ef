"""TLS from settings on every gRPC server, and mutual TLS on the gateway, with a CA and
certificates generated here (cryptography). Plaintext clients, clients that do not trust the
CA and (under mTLS) clients without a certificate, or with one from another CA, are refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc

from learnerledger.gateway.service import gateway
from learnerledger.query.service import run_query
from learnerledger.query.settings import QuerySettings
from learnerledger.rpc.server import TlsFiles, start_server
from tests.support.gateway import gateway_settings
from tests.support.gateway import self_signed_cert as self_signed_cert
from tests.support.ledger import running_ledger
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def _write(tmp: Path, stem: str, cert: Any, key: Any) -> tuple[bytes, bytes]:
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp / f"{stem}.crt").write_bytes(cert_pem)
    (tmp / f"{stem}.key").write_bytes(key_pem)
    return cert_pem, key_pem


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca = self_signed_cert("ll-test-ca", ca=True)
    rogue = self_signed_cert("rogue-ca", ca=True)
    ca_pem, _ = _write(tmp_path, "ca", *ca)
    rogue_pem, _ = _write(tmp_path, "rogue", *rogue)
    _write(tmp_path, "server", *self_signed_cert("localhost", issuer=ca))
    client = _write(tmp_path, "client", *self_signed_cert("partner", issuer=ca))
    rogue_client = _write(tmp_path, "rogue-client", *self_signed_cert("partner", issuer=rogue))
    return {
        "dir": tmp_path,
        "ca": ca_pem,
        "rogue_ca": rogue_pem,
        "client": client,
        "rogue_client": rogue_client,
    }


async def _health(channel: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return grpc.StatusCode.OK


async def _probe(port: int, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    target = f"127.0.0.1:{port}"
    if credentials is None:
        async with grpc.aio.insecure_channel(target) as channel:
            return await _health(channel)
    async with grpc.aio.secure_channel(target, credentials) as channel:
        return await _health(channel)


async def _assert_tls(port: int, pki: dict[str, Any], *, mutual: bool) -> None:
    refused = grpc.StatusCode.UNAVAILABLE
    cert, key = pki["client"]
    rogue_cert, rogue_key = pki["rogue_client"]
    assert await _probe(port, None) is refused, "a plaintext client was served"
    assert await _probe(port, grpc.ssl_channel_credentials(pki["rogue_ca"])) is refused
    with_cert = grpc.ssl_channel_credentials(pki["ca"], key, cert)
    assert await _probe(port, with_cert) is grpc.StatusCode.OK
    anonymous = await _probe(port, grpc.ssl_channel_credentials(pki["ca"]))
    rogue = await _probe(port, grpc.ssl_channel_credentials(pki["ca"], rogue_key, rogue_cert))
    if mutual:
        assert anonymous is refused, "mTLS served a client without a certificate"
        assert rogue is refused, "mTLS served a client certificate of another CA"
    else:
        assert anonymous is grpc.StatusCode.OK


async def test_gateway_serves_mutual_tls_from_settings(
    kafka_bootstrap: str, database_url: str, topics: Any, pki: dict[str, Any]
) -> None:
    d = pki["dir"]
    for client_ca in (None, d / "ca.crt"):
        settings = gateway_settings(
            kafka_bootstrap,
            database_url,
            topics,
            shutdown_grace_s=1,
            tls_cert_file=d / "server.crt",
            tls_key_file=d / "server.key",
            tls_client_ca_file=client_ca,
        )
        async with gateway(settings) as running:
            await _assert_tls(running.port, pki, mutual=client_ca is not None)


async def test_query_serves_tls_from_settings(database_url: str, pki: dict[str, Any]) -> None:
    d = pki["dir"]
    settings = QuerySettings(
        database_url=database_url,
        grpc_port=0,
        metrics_port=0,
        tls_cert_file=d / "server.crt",
        tls_key_file=d / "server.key",
    )
    stop = asyncio.Event()
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_query(settings, stop, bound))
    try:
        await _assert_tls(await asyncio.wait_for(bound, 15), pki, mutual=False)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_ledger_admin_api_serves_tls_from_settings(
    kafka_bootstrap: str, database_url: str, topics: Any, pki: dict[str, Any]
) -> None:
    d = pki["dir"]
    port = free_port()
    async with running_ledger(  # returns once the admin API listens
        kafka_bootstrap,
        database_url,
        topics,
        grpc_port=port,
        tls_cert_file=d / "server.crt",
        tls_key_file=d / "server.key",
    ):
        await _assert_tls(port, pki, mutual=False)


async def test_a_running_server_serves_a_certificate_replaced_under_it(
    pki: dict[str, Any],
) -> None:
    """cert-manager renews a certificate (new key, here even a new CA) and Kubernetes swaps the
    mounted files: the running server's next handshake presents the new certificate."""
    d = pki["dir"]
    renewed_ca = self_signed_cert("ll-renewed-ca", ca=True)
    renewed_ca_pem, _ = _write(d, "renewed-ca", *renewed_ca)
    running = await start_server(
        register=lambda server: None,
        service_names=(),
        bind="127.0.0.1",
        port=0,
        tls=TlsFiles(cert_file=d / "server.crt", key_file=d / "server.key"),
    )
    old_trust = grpc.ssl_channel_credentials(pki["ca"])
    new_trust = grpc.ssl_channel_credentials(renewed_ca_pem)
    try:
        assert await _probe(running.port, old_trust) is grpc.StatusCode.OK
        assert await _probe(running.port, new_trust) is grpc.StatusCode.UNAVAILABLE
        # Written aside, then renamed over the served files (as the kubelet's atomic writer).
        _write(d, "renewed", *self_signed_cert("localhost", issuer=renewed_ca))
        (d / "renewed.key").replace(d / "server.key")
        (d / "renewed.crt").replace(d / "server.crt")
        assert await _probe(running.port, new_trust) is grpc.StatusCode.OK
        assert await _probe(running.port, old_trust) is grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(0)
