"""What the commands that call a server share: the token and the ``--ca``, ``--cert`` and
``--key`` options."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def required_token(command: str, given: str | None, option: str, variable: str) -> str | None:
    """The token from ``option`` (``given``) or else the environment ``variable``; None, after
    saying so on stderr, if neither has one."""
    token = given or os.environ.get(variable, "")
    if not token:
        print(f"ledgerctl {command}: {option} or {variable} is required", file=sys.stderr)
        return None
    return token


def add_tls_options(sub: argparse.ArgumentParser, server: str = "the server") -> None:
    sub.add_argument("--ca", help=f"CA certificate (PEM) to verify {server}; enables TLS")
    sub.add_argument("--cert", help="client certificate (PEM) for mTLS")
    sub.add_argument("--key", help="client private key (PEM) for mTLS")


def client_tls(args: argparse.Namespace) -> Any:
    """The client library's ``TlsConfig`` from the options; None (plaintext) without them."""
    from learnerledger_client import TlsConfig

    if not (args.ca or args.cert or args.key):
        return None
    return TlsConfig.from_files(args.ca, args.cert, args.key)
