"""Free TCP ports on 127.0.0.1 (the one helper for this; bench/ keeps its own copy, because the
benchmark harness must not depend on the tests)."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago (all bound at once, then released,
    so that no two of them are the same)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    """A port that was free a moment ago."""
    (port,) = free_ports(1)
    return port
