"""A completion the ledger has already recorded, submitted again through the real gateway.

The same content is answered DUPLICATE with the same event id (unary and stream), and nothing
new is written to completions.v1; different content under the same completion id is answered
ALREADY_EXISTS with ErrorInfo reason COMPLETION_CONFLICT (a stream item: REJECTED with reason
ALREADY_EXISTS), also without a write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import common_pb2, issuer_gateway_pb2, issuer_gateway_pb2_grpc
from tests.support.authorization import EVE, Stack, bearer
from tests.support.gateway import completion
from tests.support.ledger import eventually, read_topic

pytestmark = pytest.mark.integration

pb = issuer_gateway_pb2


async def stream_one(
    stub: issuer_gateway_pb2_grpc.IssuerGatewayServiceStub,
    item: common_pb2.Completion,
    metadata: Any,
) -> pb.StreamCompletionsResponse:
    async def items() -> AsyncIterator[pb.StreamCompletionsRequest]:
        yield pb.StreamCompletionsRequest(completion=item)

    [answer] = [r async for r in stub.StreamCompletions(items(), metadata=metadata)]
    return answer


async def test_a_recorded_completion_resubmitted_is_duplicate_or_conflict(
    services: Stack, kafka_bootstrap: str, topics: Any
) -> None:
    stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(services.gateway)
    swayam = bearer(services.tokens["swayam"])
    original = completion("resub-1", learner_id=EVE)
    first = await stub.SubmitCompletion(
        pb.SubmitCompletionRequest(completion=original), metadata=swayam
    )
    assert first.status == pb.ACCEPTANCE_STATUS_ACCEPTED

    async def recorded() -> bool:
        status = await stub.GetCompletionStatus(
            pb.GetCompletionStatusRequest(completion_id="resub-1"), metadata=swayam
        )
        return status.ledger_position > 0

    await eventually(recorded, what="the ledger to record resub-1")
    on_topic = len(await read_topic(kafka_bootstrap, topics.completions, 4))

    again = await stub.SubmitCompletion(
        pb.SubmitCompletionRequest(completion=original), metadata=swayam
    )
    assert (again.status, again.event_id) == (pb.ACCEPTANCE_STATUS_DUPLICATE, first.event_id)
    streamed = await stream_one(stub, original, swayam)
    assert (streamed.status, streamed.event_id) == (pb.ACCEPTANCE_STATUS_DUPLICATE, first.event_id)

    changed = completion("resub-1", learner_id=EVE)
    changed.score = 91.0
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await stub.SubmitCompletion(pb.SubmitCompletionRequest(completion=changed), metadata=swayam)
    assert conflict.value.code() is grpc.StatusCode.ALREADY_EXISTS
    infos = [
        (d.reason, d.domain)
        for d in decode_details(conflict.value.trailing_metadata())
        if isinstance(d, error_details_pb2.ErrorInfo)
    ]
    assert infos == [("COMPLETION_CONFLICT", "learnerledger.dev")]
    rejected = await stream_one(stub, changed, swayam)
    assert (rejected.status, rejected.reason) == (pb.ACCEPTANCE_STATUS_REJECTED, "ALREADY_EXISTS")

    # Neither the duplicates nor the conflicts were written: the topic holds what it held.
    with pytest.raises(TimeoutError):
        await read_topic(kafka_bootstrap, topics.completions, on_topic + 1, timeout=3.0)
