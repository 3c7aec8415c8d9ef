"""Every service in-process with learner sign-in, and a generic caller of any method."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import descriptor as pd
from google.protobuf import message_factory
from google.protobuf.message import Message

from learnerledger.ledger.verification import generate_signing_key
from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.query.service import run_query
from learnerledger.query.settings import QuerySettings
from learnerledger.v1 import (
    issuer_gateway_pb2,
    ledger_admin_pb2,
    transcript_query_pb2,
)
from learnerledger_devstack.dev_identity import DEV_AUDIENCE, DEV_ISSUER, DevIdentityProvider
from tests.support.gateway import running_gateway
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    running_ledger,
    seed_catalog,
)
from tests.support.ports import free_port
from tests.support.projector import log_heads, projected, running_projector

DIANA, EVE = "611111111111", "622222222222"  # DIANA consents to du; EVE to nobody


GATEWAY = issuer_gateway_pb2.DESCRIPTOR.services_by_name["IssuerGatewayService"]


ADMIN = ledger_admin_pb2.DESCRIPTOR.services_by_name["LedgerAdminService"]


QUERY = transcript_query_pb2.DESCRIPTOR.services_by_name["TranscriptQueryService"]


@dataclass
class Stack:
    gateway: grpc.aio.Channel
    admin: grpc.aio.Channel
    query: grpc.aio.Channel
    tokens: dict[str, str]
    provider: DevIdentityProvider


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def services(
    kafka_bootstrap: str, database_url: str, topics: Any, tmp_path: Any
) -> AsyncIterator[Stack]:
    provider = DevIdentityProvider(tmp_path / "learner-idp").ensure()
    sign_in = learner_sign_in(provider)
    await seed_catalog(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        # a second reader, for learners' own consent changes (du's consent stays as seeded)
        if not await catalog.university_exists(connection, "acme-hr"):
            await catalog.add_university(connection, "acme-hr", "Acme (employer)")
        tokens = {
            "swayam": (await catalog.issue_token(connection, PrincipalKind.ISSUER, "swayam"))[1],
            "nptel": (await catalog.issue_token(connection, PrincipalKind.ISSUER, "nptel"))[1],
            "du": (await catalog.issue_token(connection, PrincipalKind.UNIVERSITY, "du"))[1],
            "admin": (await catalog.issue_token(connection, PrincipalKind.ADMIN, "ops"))[1],
            "diana": provider.mint(DIANA),  # learners: ID tokens, not API tokens
            "eve": provider.mint(EVE),
        }
    finally:
        await connection.close()
    await produce(
        kafka_bootstrap,
        topics.completions,
        [consent(DIANA), completion(DIANA, "az-1"), completion(EVE, "az-2")],
    )
    admin_port = free_port()
    async with (
        running_ledger(kafka_bootstrap, database_url, topics, grpc_port=admin_port, **sign_in),
        running_projector(
            kafka_bootstrap, database_url, topics.ledger_entries, f"p-{topics.ledger_entries}"
        ),
        running_query_channel(database_url, **sign_in) as query_channel,
        running_gateway(kafka_bootstrap, database_url, topics, **sign_in) as (_, gateway_channel),
        grpc.aio.insecure_channel(f"127.0.0.1:{admin_port}") as admin_channel,
    ):
        await eventually(lambda: _projected(database_url), what="the seed to be projected")
        yield Stack(gateway_channel, admin_channel, query_channel, tokens, provider)


def learner_sign_in(provider: DevIdentityProvider) -> dict[str, Any]:
    """The settings that make a service accept the provider's ID tokens."""
    return {
        "learner_oidc_issuer": DEV_ISSUER,
        "learner_oidc_audience": DEV_AUDIENCE,
        "learner_oidc_jwks_file": str(provider.jwks_file),
        "learner_id_claim": "apaar_id",
    }


@contextlib.asynccontextmanager
async def running_query_channel(database_url: str, **more: Any) -> AsyncIterator[grpc.aio.Channel]:
    key_dir = tempfile.mkdtemp(prefix="ll-authz-")
    key_file = Path(key_dir) / "credential.key"
    generate_signing_key(key_file)  # credentials configured: ExportCredential answers too
    settings = QuerySettings(
        database_url=database_url,
        grpc_port=0,
        metrics_port=0,
        watch_poll_ms=50,
        http_port=0,
        credential_signing_key_file=key_file,
        **more,
    )
    stop = asyncio.Event()
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_query(settings, stop, bound))
    port = await asyncio.wait_for(bound, 15)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
        shutil.rmtree(key_dir, ignore_errors=True)


async def _projected(database_url: str) -> bool:
    """Both learners' chains are in the read model up to the log's head (seeded once per
    module database; later tests append another consent grant, hence no fixed counts)."""
    heads = await log_heads(database_url, [DIANA, EVE])
    return (
        heads.get(DIANA, 0) >= 2
        and heads.get(EVE, 0) >= 1
        and (await projected(database_url, [DIANA, EVE]) == heads)
    )


def request_message(method: pd.MethodDescriptor, **fields: Any) -> Any:
    cls = message_factory.GetMessageClass(method.input_type)
    request = cls()
    for name, value in fields.items():
        if name in cls.DESCRIPTOR.fields_by_name:
            if isinstance(value, Message):
                getattr(request, name).CopyFrom(value)
            else:
                setattr(request, name, value)
    if "learner_id" in fields and "learner_ids" in cls.DESCRIPTOR.fields_by_name:
        request.learner_ids.append(fields["learner_id"])  # a batch of that one learner
    return request


async def invoke(
    channel: grpc.aio.Channel,
    service: pd.ServiceDescriptor,
    method: pd.MethodDescriptor,
    request: Any,
    metadata: tuple[tuple[str, str], ...],
    *,
    timeout: float = 10,
) -> grpc.aio.AioRpcError | None:
    """Call any method generically with ``request`` (a message, or raw ``bytes`` sent as they
    are); the error it ends with, or None when it succeeded (a stream: its first answer)."""
    path = f"/{service.full_name}/{method.name}"
    response_class = message_factory.GetMessageClass(method.output_type)
    kwargs: dict[str, Any] = {
        "request_serializer": lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
        "response_deserializer": response_class.FromString,
    }
    try:
        if method.client_streaming:
            multi = channel.stream_stream(path, **kwargs)

            async def one() -> AsyncIterator[Any]:
                yield request

            stream = multi(one(), metadata=metadata, timeout=timeout)
            async for _ in stream:
                break
            stream.cancel()
        elif method.server_streaming:
            stream = channel.unary_stream(path, **kwargs)(
                request, metadata=metadata, timeout=timeout
            )
            async for _ in stream:
                break
            stream.cancel()
        else:
            await channel.unary_unary(path, **kwargs)(request, metadata=metadata, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return exc
    return None
