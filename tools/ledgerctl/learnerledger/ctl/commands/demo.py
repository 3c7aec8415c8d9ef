"""``ledgerctl demo``: the whole pipeline locally, with demo data (development only; the demo
itself is :mod:`learnerledger_devstack.demo`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from typing import Any

from learnerledger.ctl.cli import command, require_devstack
from learnerledger.ctl.commands.stack import prepare


def register(commands: Any) -> None:
    demo = command(commands, "demo", cmd_demo, "the whole pipeline locally, with demo data")
    demo.add_argument("--completions", type=int, default=10_000)


def cmd_demo(args: argparse.Namespace) -> int:
    require_devstack("demo")
    from learnerledger.ledger.verification import generate_signing_key
    from learnerledger_devstack.demo import run_demo
    from learnerledger_devstack.stack import StackConfig, stack_up

    cfg = StackConfig.from_env()
    info = stack_up(cfg)
    os.environ.update(info.kafka_env.get("admin", {}))  # the demo's own clients act as admin
    asyncio.run(prepare(info.kafka_bootstrap, info.database_url))
    key = cfg.state_dir / "checkpoint-signing.key"
    if not key.exists():
        generate_signing_key(key)
    credential_key = cfg.state_dir / "credential-signing.key"  # its own key, not the checkpoint's
    if not credential_key.exists():
        generate_signing_key(credential_key)
    from learnerledger.domain.signed_note import NoteVerifier
    from learnerledger.ledger.settings import LedgerSettings
    from learnerledger.ledger.verification import load_signing_key, public_key_of

    ledger = LedgerSettings()
    vkey = NoteVerifier.for_key(
        ledger.log_origin, public_key_of(load_signing_key(key))
    ).verifier_key()
    env = {
        **info.env(),
        "LEDGER_CHECKPOINT_SIGNING_KEY_FILE": str(key),
        "LEDGER_CHECKPOINT_INTERVAL_S": "30",
        "QUERY_CREDENTIAL_SIGNING_KEY_FILE": str(credential_key),
        # the web pages (/verify, /learner) on the query service's HTTP server
        "QUERY_HTTP_PORT": os.environ.get("QUERY_HTTP_PORT") or str(_http_port(8080)),
        "QUERY_WEB_CHECKPOINT_VKEYS": os.environ.get("QUERY_WEB_CHECKPOINT_VKEYS") or vkey,
        "QUERY_WEB_LEDGER_ADDRESS": f"127.0.0.1:{ledger.grpc_port}",
    }
    os.environ["QUERY_HTTP_PORT"] = env["QUERY_HTTP_PORT"]  # the demo prints its URLs
    asyncio.run(
        run_demo(
            state_dir=cfg.state_dir,
            bootstrap=info.kafka_bootstrap,
            database_url=info.login_url("admin"),
            env=env,
            total=args.completions,
            logins=info.logins,
            kafka_env=info.kafka_env,
        )
    )
    return 0


def _http_port(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
