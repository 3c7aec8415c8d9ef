"""The one way the services produce: idempotent, ``acks=all``, bounded in time."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer


def durable_producer(
    bootstrap_servers: str,
    *,
    client_id: str,
    linger_ms: int = 5,
    request_timeout_ms: int = 10_000,
    max_batch_size: int = 256 * 1024,
) -> AIOKafkaProducer:
    """A producer whose acknowledgement means the record is on every in-sync replica.

    ``enable_idempotence`` prevents duplicates from the producer's own retries; ``acks='all'``
    waits for the in-sync replicas. Callers bound each send with their own timeout.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        request_timeout_ms=request_timeout_ms,
        max_batch_size=max_batch_size,
        compression_type=None,
    )


def header(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], name: str
) -> str | None:
    """The first header called ``name``, decoded as UTF-8 (None when absent)."""
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", errors="replace")
    return None
