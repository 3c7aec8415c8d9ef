"""``ledgerctl replay rejected|projections``: re-drive rejected requests, rebuild the read model."""

from __future__ import annotations

import argparse
from typing import Any

from learnerledger.ctl.cli import (
    command,
    common_settings,
    database_url,
    group,
    instant_arg,
    with_connection,
)


def register(commands: Any) -> None:
    replay = group(commands, "replay", "replay and re-drive")
    rejected = command(
        replay, "rejected", cmd_replay_rejected, "re-drive rejected requests to completions.v1"
    )
    rejected.add_argument("--reason", help="only this rejection reason, e.g. unknown_course")
    rejected.add_argument("--issuer", help="only this issuer's requests")
    rejected.add_argument("--since", type=instant_arg, help="rejected at or after (ISO 8601)")
    rejected.add_argument("--until", type=instant_arg, help="rejected before (ISO 8601)")
    rejected.add_argument("--limit", type=int, help="at most this many requests")
    rejected.add_argument(
        "--dry-run", action="store_true", help="show what would be re-driven and decided now"
    )

    projections = command(
        replay,
        "projections",
        cmd_replay_projections,
        "rebuild the read model beside the live one, then switch to it (resumable)",
    )
    projections.add_argument("--source", choices=("log", "kafka"), default="log")
    projections.add_argument(
        "--learner", action="append", help="only this learner (repeat); default: everyone"
    )
    projections.add_argument("--batch", type=int, default=2000, help="entries per transaction")


async def cmd_replay_rejected(args: argparse.Namespace) -> int:
    from learnerledger.kafka.producer import durable_producer
    from learnerledger.ledger.redrive import RejectionFilter, plan, redrive, select_rejections

    settings = common_settings()
    selection = RejectionFilter(args.reason, args.issuer, args.since, args.until)

    async def run(connection: Any) -> int:
        rejections = await select_rejections(connection, selection, limit=args.limit)
        if args.dry_run:
            print(f"{'rejection':>9}  {'learner':<12} {'issuer':<12} {'completion':<20} "
                  f"{'was':<28} would be now")  # fmt: skip
            for item in await plan(connection, rejections):
                r = item.rejection
                print(
                    f"{r.rejection_id:>9}  {r.learner_id or '-':<12} {r.issuer_id or '-':<12} "
                    f"{r.completion_id or '-':<20} {r.reason:<28} {item.outcome} ({item.detail})"
                )
            print(f"{len(rejections)} rejected request(s) would be re-driven to "
                  f"{settings.topic_completions} (dry run: nothing sent)")  # fmt: skip
            return 0
        if not rejections:
            print("no rejected requests match")
            return 0
        producer = durable_producer(settings.kafka_bootstrap_servers, client_id="ledgerctl-redrive")
        await producer.start()
        try:
            sent = await redrive(producer, settings.topic_completions, rejections)
        finally:
            await producer.stop()
        print(f"re-drove {sent} rejected request(s) to {settings.topic_completions}")
        return 0

    return await with_connection(run)


async def cmd_replay_projections(args: argparse.Namespace) -> int:
    from learnerledger.ctl.replay import replay_projections

    settings = common_settings()
    final = await replay_projections(
        database_url("admin"),
        source=args.source,
        learner_ids=args.learner or (),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        entries_topic=settings.topic_ledger_entries,
        batch=args.batch,
    )
    return 0 if final.state == "succeeded" else 1
