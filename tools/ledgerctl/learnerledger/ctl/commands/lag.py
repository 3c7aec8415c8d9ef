"""``ledgerctl lag``: consumer lag per group and partition; read model lag."""

from __future__ import annotations

import argparse
from typing import Any

from learnerledger.ctl.cli import command, common_settings, with_connection


def register(commands: Any) -> None:
    lag = command(commands, "lag", cmd_lag, "consumer lag per group and partition; read model lag")
    lag.add_argument("--ledger-group", help="default: LEDGER_CONSUMER_GROUP or ledger")
    lag.add_argument("--projector-group", help="default: PROJECTOR_CONSUMER_GROUP or projector")


async def cmd_lag(args: argparse.Namespace) -> int:
    from learnerledger.ctl.lag import collect, format_report
    from learnerledger.ledger.settings import LedgerSettings
    from learnerledger.query.settings import ProjectorSettings

    settings = common_settings()

    async def show(connection: Any) -> int:
        report = await collect(
            connection,
            bootstrap=settings.kafka_bootstrap_servers,
            ledger_group=args.ledger_group or LedgerSettings().consumer_group,
            completions_topic=settings.topic_completions,
            projector_group=args.projector_group or ProjectorSettings().consumer_group,
            entries_topic=settings.topic_ledger_entries,
        )
        print(format_report(report))
        return 0

    return await with_connection(show)
