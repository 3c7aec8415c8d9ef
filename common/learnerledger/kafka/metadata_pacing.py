"""Pause between metadata retries while no broker answers (aio-libs/aiokafka#496).

When every broker refuses connections, aiokafka's metadata refresh fails at once and is asked
for again at once (by its own synchronizer, the producer's sender and the consumer's fetcher),
so a client spins a CPU core and logs thousands of lines a second for as long as the outage
lasts. On a shared node that starves the broker and the database that are trying to come back.
Wrapping the client's metadata update so that a failed one waits ``retry_backoff_ms`` before
returning bounds every such loop to a few attempts a second; a successful update is not delayed.
Measured with the fault suite (one broker stop under live traffic, repeated-line limiter off):
the gateway logged 36,090 failed connection attempts in an 8 s outage without this, 55 with it.

This touches aiokafka's private ``AIOKafkaClient._metadata_update`` (aiokafka is pinned in
constraints.txt); ``tests/unit/test_metadata_pacing.py`` fails if that method goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaClient


def pace_metadata_retries(
    client: AIOKafkaClient, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> None:
    """Make ``client`` wait its ``retry_backoff_ms`` after a metadata update that failed
    (``sleep``: how it waits; tests pass a recorder)."""
    update: Callable[[Any, Any], Awaitable[bool]] = client._metadata_update
    pause_s = max(float(client._retry_backoff), 0.1)

    async def paced(cluster_metadata: Any, topics: Any) -> bool:
        updated = await update(cluster_metadata, topics)
        if not updated:
            await sleep(pause_s)
        return updated

    client._metadata_update = paced
