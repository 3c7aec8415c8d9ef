"""``ledgerctl topics create``: the Kafka topics, with their retention."""

from __future__ import annotations

import argparse
from typing import Any

from learnerledger.ctl.cli import command, common_settings, group


def register(commands: Any) -> None:
    topics = group(commands, "topics", "Kafka topics")
    create = command(topics, "create", cmd_topics_create, "create missing topics with retention")
    create.add_argument("--replication-factor", type=int, default=1)
    create.add_argument("--min-insync-replicas", type=int, default=1)


async def cmd_topics_create(args: argparse.Namespace) -> int:
    from learnerledger.kafka.topics import ensure_topics, topic_specs

    common = common_settings()
    created = await ensure_topics(
        common.kafka_bootstrap_servers,
        topic_specs(common),
        replication_factor=args.replication_factor,
        min_insync_replicas=args.min_insync_replicas,
    )
    print("\n".join(f"created {name}" for name in created) or "all topics exist")
    return 0
