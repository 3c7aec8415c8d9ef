"""The ``--ca``, ``--cert`` and ``--key`` options of the commands that call a server."""

from __future__ import annotations

import argparse
from typing import Any


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
