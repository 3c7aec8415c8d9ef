"""``ledgerctl stack up|down|status``: the local Kafka + PostgreSQL stack (development only;
the stack itself is :mod:`learnerledger_devstack`, imported when a command runs)."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from learnerledger.config import CommonSettings
from learnerledger.ctl.cli import command, group, redact, require_devstack


def register(commands: Any) -> None:
    stack = group(commands, "stack", "the local Kafka + PostgreSQL stack")
    command(stack, "up", cmd_stack_up, "start (or reuse) Kafka and PostgreSQL, migrate, topics")
    command(stack, "down", cmd_stack_down, "stop what `stack up` started")
    command(stack, "status", cmd_stack_status, "each component, its address, pid and health")


def cmd_stack_up(args: argparse.Namespace) -> int:
    require_devstack("stack up")
    from learnerledger_devstack.stack import StackConfig, stack_up

    cfg = StackConfig.from_env()
    info = stack_up(cfg)
    os.environ.update(info.kafka_env.get("admin", {}))  # topics are created as the Kafka admin
    asyncio.run(prepare(info.kafka_bootstrap, info.database_url))
    where = "external servers" if info.external else "local stack"
    if not info.external:
        from learnerledger_devstack.dev_identity import for_state_dir

        # the development identity provider: `ledgerctl learner token` signs with it and the
        # local services (`ledgerctl serve`) accept its tokens
        for_state_dir(cfg.state_dir).ensure()
    print(f"{where} ready: kafka {info.kafka_bootstrap}, postgres {redact(info.database_url)}")
    print("use it from a shell with:")
    if info.external:
        print(
            f"  export KAFKA_BOOTSTRAP_SERVERS={info.kafka_bootstrap} "
            f"DATABASE_URL={info.database_url}"
        )
    else:
        # No DATABASE_URL: each ledgerctl command then logs in as the login meant for it.
        admin = info.kafka_env.get("admin", {})
        print(
            f"  export KAFKA_BOOTSTRAP_SERVERS={info.kafka_bootstrap} "
            + " ".join(f"{name}={value}" for name, value in admin.items())
        )
        print(
            f"PostgreSQL logins (one per service, ll_admin_login for admin work) are in "
            f"{cfg.postgres().logins_file}; ledgerctl picks the right one. As the admin:"
        )
        print(f"  DATABASE_URL={info.login_url('admin')}")
    return 0


async def prepare(bootstrap: str, database_url: str) -> None:
    """Schema migrations and topics: what every service expects to find."""
    from learnerledger.kafka.topics import ensure_topics, topic_specs
    from learnerledger.postgres.migrations import migrate

    settings = CommonSettings(kafka_bootstrap_servers=bootstrap, database_url=database_url)
    for name in await migrate(database_url):
        print(f"migrated: {name}")
    for topic in await ensure_topics(bootstrap, topic_specs(settings)):
        print(f"created topic: {topic}")


def cmd_stack_down(args: argparse.Namespace) -> int:
    require_devstack("stack down")
    from learnerledger_devstack.services import stop_services
    from learnerledger_devstack.stack import StackConfig, stack_down

    cfg = StackConfig.from_env()
    for name in stop_services(cfg.state_dir):
        print(f"stopped service {name}")
    stack_down(cfg)
    print("local stack stopped")
    return 0


def cmd_stack_status(args: argparse.Namespace) -> int:
    require_devstack("stack status")
    from learnerledger_devstack.stack import StackConfig, format_status, stack_status

    statuses = stack_status(StackConfig.from_env())
    print(format_status(statuses))
    return 0 if all(s.healthy for s in statuses) else 1
