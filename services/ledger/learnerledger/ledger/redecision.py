"""The approval fan-out: after an approval, ask the ledger to re-decide affected learners.

An approval (possibly backdated) can cover completions already recorded without credit
(``course_not_approved``). Rather than writing to the credit log from a second place, the
fan-out publishes one ``CreditRedecisionRequested`` per affected learner to ``completions.v1``,
keyed by the learner: the re-decision then runs in the appender, in that learner's order, like
any request. The entries it creates carry the idempotency key (approval, original entry) as
their source event id, so re-publishing after a crash credits nothing twice. An approval is
marked fanned out only after every request was acknowledged (``acks=all``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import structlog

from learnerledger.domain.catalog import RecommendationChange
from learnerledger.domain.events import (
    CURRENT_SCHEMA_VERSION,
    CreditRedecisionRequested,
    Envelope,
    redecision_event_id,
)
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.kafka.producer import DurableProducer
from learnerledger.postgres import catalog, credit_log
from learnerledger.runtime import wait_or_stop

log = structlog.get_logger(__name__)


async def fan_out_approvals(
    *,
    pool: asyncpg.Pool,
    producer: DurableProducer,
    topic: str,
    idle_s: float,
    stop: asyncio.Event,
) -> None:
    """Publish re-decision requests for every approval not yet fanned out, until ``stop``."""
    while not stop.is_set():
        done = await fan_out_once(pool=pool, producer=producer, topic=topic)
        if not done:
            await wait_or_stop(stop, idle_s)


async def fan_out_once(*, pool: asyncpg.Pool, producer: DurableProducer, topic: str) -> int:
    """Fan out the approvals waiting now; returns how many were fanned out."""
    async with pool.acquire() as connection:
        approvals = await catalog.approvals_awaiting_fanout(connection)
        for approval in approvals:
            learners = await credit_log.learners_with_uncredited_completions(
                connection, approval.course_id
            )
            await asyncio.gather(
                *[
                    producer.send_and_wait(
                        topic,
                        key=learner.encode(),
                        value=encode_completion_event(_request(approval, learner)),
                    )
                    for learner in learners
                ]
            )
            await catalog.record_fanout(connection, approval.change_id, len(learners))
            log.info(
                "approval_fanned_out",
                course_id=approval.course_id,
                approval_id=str(approval.change_id),
                learners=len(learners),
            )
    return len(approvals)


def _request(approval: RecommendationChange, learner_id: str) -> CreditRedecisionRequested:
    envelope = Envelope(
        event_id=redecision_event_id(approval.change_id, learner_id),
        schema_version=CURRENT_SCHEMA_VERSION,
        occurred_at=datetime.now(UTC),
        issuer_id="",
        learner_id=learner_id,
    )
    return CreditRedecisionRequested(envelope, approval.course_id, approval.change_id)
