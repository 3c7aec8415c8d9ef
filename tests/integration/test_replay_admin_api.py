"""LedgerAdminService.StartReplay / GetReplayStatus: rebuilds from the log and from Kafka."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import grpc
import pytest

from learnerledger.postgres import catalog
from learnerledger.v1 import ledger_admin_pb2 as pb
from learnerledger.v1 import ledger_admin_pb2_grpc
from tests.support.ledger import (
    completion,
    eventually,
    produce,
    running_ledger,
    seed_catalog,
)
from tests.support.ports import free_port
from tests.support.projector import log_equals_read_model as log_equals_read_model

pytestmark = pytest.mark.integration

LEARNERS = [f"91{i:010d}" for i in range(1, 9)]


async def _finished(
    stub: ledger_admin_pb2_grpc.LedgerAdminServiceStub, metadata: Any, replay_id: str
) -> pb.ReplayStatus:
    status = pb.ReplayStatus()

    async def done() -> bool:
        nonlocal status
        reply = await stub.GetReplayStatus(
            pb.GetReplayStatusRequest(replay_id=replay_id), metadata=metadata
        )
        status = reply.replay
        return status.state in (pb.REPLAY_STATE_SUCCEEDED, pb.REPLAY_STATE_FAILED)

    await eventually(done, timeout=60, what="the replay to finish")
    return status


async def test_start_replay_rebuilds_the_read_model_from_the_log_and_from_kafka(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    await seed_catalog(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        _, token = await catalog.issue_token(connection, catalog.PrincipalKind.ADMIN, "ops")
    finally:
        await connection.close()
    admin = (("authorization", f"Bearer {token}"),)
    port = free_port()
    async with (
        running_ledger(kafka_bootstrap, database_url, topics, grpc_port=port),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel)
        await produce(
            kafka_bootstrap,
            topics.completions,
            [completion(learner, f"g-{i}") for i, learner in enumerate(LEARNERS)]
            + [completion(LEARNERS[0], "g-extra")],
        )

        async def relayed() -> bool:
            connection = await asyncpg.connect(database_url)
            try:
                return bool(
                    await connection.fetchval(
                        "SELECT (SELECT count(*) FROM credit_log) = $1 AND EXISTS (SELECT 1 "
                        "FROM relay_progress WHERE last_position = "
                        "(SELECT max(position) FROM credit_log))",
                        len(LEARNERS) + 1,
                    )
                )
            finally:
                await connection.close()

        await eventually(relayed, what="entries appended and relayed")
        # No projector runs here: the read model is empty until a replay builds it.
        assert len(await log_equals_read_model(database_url)) == len(LEARNERS)

        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.StartReplay(pb.StartReplayRequest(), metadata=admin)
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetReplayStatus(
                pb.GetReplayStatusRequest(replay_id=str(uuid.uuid4())), metadata=admin
            )
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stub.StartReplay(pb.StartReplayRequest(source=pb.REPLAY_SOURCE_LOG))
        assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED

        started = await stub.StartReplay(
            pb.StartReplayRequest(source=pb.REPLAY_SOURCE_LOG), metadata=admin
        )
        assert started.replay.entries_total == len(LEARNERS) + 1
        final = await _finished(stub, admin, started.replay.replay_id)
        assert final.state == pb.REPLAY_STATE_SUCCEEDED, final.error_message
        assert final.entries_applied == len(LEARNERS) + 1
        assert final.learners_done == len(LEARNERS)
        assert final.finished_at.seconds > 0
        assert await log_equals_read_model(database_url) == []

        # From ledger.entries.v1 (for two learners): the same fold.
        await asyncio.sleep(0)
        started = await stub.StartReplay(
            pb.StartReplayRequest(source=pb.REPLAY_SOURCE_KAFKA, learner_ids=LEARNERS[:2]),
            metadata=admin,
        )
        assert started.replay.source == pb.REPLAY_SOURCE_KAFKA
        final = await _finished(stub, admin, started.replay.replay_id)
        assert final.state == pb.REPLAY_STATE_SUCCEEDED, final.error_message
        assert final.entries_applied == 3  # LEARNERS[0] has two entries, LEARNERS[1] one
        assert await log_equals_read_model(database_url) == []
