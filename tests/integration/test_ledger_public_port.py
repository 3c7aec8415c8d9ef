"""LEDGER_PUBLIC_GRPC_PORT: universities' and learners' services on a port of their own.

The admin port stays for operators (deploy/k8s opens it only to ops namespaces); redemption
and the learner's consent are served on the public port too, and LedgerAdminService is not.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc
import pytest

from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.v1 import (
    learner_consent_pb2,
    learner_consent_pb2_grpc,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
    redemption_pb2,
    redemption_pb2_grpc,
)
from tests.support.ledger import running_ledger_task, seed_catalog, wait_listening
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


async def test_the_public_port_serves_redemption_and_consent_but_not_administration(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    await seed_catalog(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        _, university = await catalog.issue_token(connection, PrincipalKind.UNIVERSITY, "du")
        _, admin = await catalog.issue_token(connection, PrincipalKind.ADMIN, "ops")
    finally:
        await connection.close()
    admin_port, public_port = free_port(), free_port()
    async with running_ledger_task(
        kafka_bootstrap, database_url, topics, grpc_port=admin_port, public_grpc_port=public_port
    ) as (_, task):
        await wait_listening(public_port, task)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{public_port}") as public:
            listed = await redemption_pb2_grpc.RedemptionServiceStub(public).ListProgrammes(
                redemption_pb2.ListProgrammesRequest(),
                metadata=(("authorization", f"Bearer {university}"),),
                timeout=10,
            )
            assert list(listed.programmes) == []
            with pytest.raises(grpc.aio.AioRpcError) as no_token:
                await learner_consent_pb2_grpc.LearnerConsentServiceStub(
                    public
                ).RevokeReaderConsent(
                    learner_consent_pb2.RevokeReaderConsentRequest(learner_id="611111111111"),
                    timeout=10,
                )
            assert no_token.value.code() is grpc.StatusCode.UNAUTHENTICATED  # served, refused
            with pytest.raises(grpc.aio.AioRpcError) as absent:
                await ledger_admin_pb2_grpc.LedgerAdminServiceStub(public).VerifyLedger(
                    ledger_admin_pb2.VerifyLedgerRequest(),
                    metadata=(("authorization", f"Bearer {admin}"),),
                    timeout=10,
                )
            assert absent.value.code() is grpc.StatusCode.UNIMPLEMENTED
        async with grpc.aio.insecure_channel(f"127.0.0.1:{admin_port}") as private:
            verified = await ledger_admin_pb2_grpc.LedgerAdminServiceStub(private).VerifyLedger(
                ledger_admin_pb2.VerifyLedgerRequest(),
                metadata=(("authorization", f"Bearer {admin}"),),
                timeout=30,
            )
            assert verified.ok
