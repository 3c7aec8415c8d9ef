"""pace_metadata_retries: a failed metadata update waits before the next; a good one does not.

It wraps aiokafka's private ``AIOKafkaClient._metadata_update``; the first test fails when an
aiokafka upgrade renames or reshapes it, so the pacing cannot silently stop working.
"""

from __future__ import annotations

import inspect
from typing import Any

from aiokafka import AIOKafkaClient

from learnerledger.kafka.metadata_pacing import pace_metadata_retries


def test_aiokafka_still_has_the_wrapped_method() -> None:
    method = AIOKafkaClient._metadata_update
    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self", "cluster_metadata", "topics"]


async def test_only_a_failed_update_pauses() -> None:
    client = AIOKafkaClient(bootstrap_servers="127.0.0.1:9", retry_backoff_ms=250)
    outcomes = [False, True]

    async def scripted(cluster_metadata: Any, topics: Any) -> bool:
        return outcomes.pop(0)

    pauses: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        pauses.append(seconds)

    client._metadata_update = scripted
    # Not a monkeypatch of asyncio.sleep: the test loop is the session's, and another test's
    # background task calling a sleep that never yields would spin it for good.
    pace_metadata_retries(client, sleep=recorded_sleep)

    assert await client._metadata_update(client.cluster, set()) is False
    assert pauses == [0.25]
    assert await client._metadata_update(client.cluster, set()) is True
    assert pauses == [0.25]
    await client.close()
