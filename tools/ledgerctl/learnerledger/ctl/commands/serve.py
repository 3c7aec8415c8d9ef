"""``ledgerctl serve SERVICE``: run one service in the foreground."""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

from learnerledger.ctl.cli import (
    command,
    database_url,
    use_local_kafka_principal,
    use_local_learner_sign_in,
)

SERVICE_ENTRYPOINTS = {
    "gateway": "learnerledger.gateway.service",
    "ledger": "learnerledger.ledger.service",
    "query": "learnerledger.query.service",
    "projector": "learnerledger.query.projector",
}


def register(commands: Any) -> None:
    serve = command(commands, "serve", cmd_serve, "run one service in the foreground")
    serve.add_argument("service", choices=sorted(SERVICE_ENTRYPOINTS))
    # main() authenticates every other command to the local stack's Kafka as `admin`
    serve.set_defaults(own_kafka_principal=True)


def cmd_serve(args: argparse.Namespace) -> int:
    # Each service logs in as its own login (the ledger's also serves the admin API), and to
    # Kafka as its own principal.
    os.environ["DATABASE_URL"] = database_url(args.service)
    use_local_kafka_principal(args.service)
    use_local_learner_sign_in()
    importlib.import_module(SERVICE_ENTRYPOINTS[args.service]).main()
    return 0
