"""The topics of docs/domain.md, created with their partitions and retention.

Retention (also in OPERATIONS.md): ``completions.v1`` 7 days (the ledger consumes within
seconds; a replay of requests older than that comes from the rejections table or partners),
``ledger.entries.v1`` forever (projections can always be rebuilt from Kafka as well as from the
log), ``completions.dlq.v1`` 30 days (the rejections table keeps the bytes indefinitely),
``ledger.checkpoints.v1`` forever and one partition (the signed tree heads in the order they
were signed: a witness that follows it sees every head, in order).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from learnerledger.config import CommonSettings
from learnerledger.kafka.security import client_options

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int  # -1: forever

    def configs(self, min_insync_replicas: int) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(min_insync_replicas),
            "cleanup.policy": "delete",
        }


def topic_specs(settings: CommonSettings) -> list[TopicSpec]:
    partitions = settings.topic_partitions
    return [
        TopicSpec(settings.topic_completions, partitions, 7 * DAY_MS),
        TopicSpec(settings.topic_ledger_entries, partitions, -1),
        TopicSpec(settings.topic_completions_dlq, partitions, 30 * DAY_MS),
        TopicSpec(settings.topic_ledger_checkpoints, 1, -1),
    ]


async def ensure_topics(
    bootstrap_servers: str,
    specs: list[TopicSpec],
    *,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    A principal that may not create topics (every service but ``admin`` where Kafka authorizes)
    sees only the topics it may describe; the others it leaves to the admin who creates them
    (``ledgerctl topics create``): refused creations are not errors.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=15000, **client_options()
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        refused: set[str] = set()
        with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another process
            response = await admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        spec.partitions,
                        replication_factor,
                        topic_configs=spec.configs(min_insync_replicas),
                    )
                    for spec in missing
                ]
            )
            refused = _raise_topic_errors(response)
        return [spec.name for spec in missing if spec.name not in refused]
    finally:
        await admin.close()


class TopicCreationFailed(RuntimeError):
    """The broker refused to create a topic (other than because it already exists)."""


_TOPIC_ALREADY_EXISTS = 36
_TOPIC_AUTHORIZATION_FAILED = 29
_CLUSTER_AUTHORIZATION_FAILED = 31


def _raise_topic_errors(response: Any) -> set[str]:
    """Raise for a refused creation; return the topics this principal may not create."""
    refused = set()
    for topic_error in getattr(response, "topic_errors", ()):
        name, code = topic_error[0], topic_error[1]
        if code in (_TOPIC_AUTHORIZATION_FAILED, _CLUSTER_AUTHORIZATION_FAILED):
            refused.add(name)
        elif code not in (0, _TOPIC_ALREADY_EXISTS):
            message = topic_error[2] if len(topic_error) > 2 else ""
            raise TopicCreationFailed(f"cannot create topic {name}: error {code} {message}")
    return refused
