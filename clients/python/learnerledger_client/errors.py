"""Typed failures of the client. Every gRPC error that is not retried surfaces as
``CallFailed`` with its status code, so callers never need to import grpc to handle one."""

from __future__ import annotations

import grpc


class LedgerClientError(Exception):
    """Base of every error this library raises."""


class CallFailed(LedgerClientError):
    """The server answered a call with an error status that is not retried."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method}: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details


class RetriesExhausted(CallFailed):
    """UNAVAILABLE (or no answer in time) for more consecutive attempts than the policy allows.

    For a submission stream, the items not yet answered were not acknowledged: submitting them
    again (for example by re-running the same file) is safe.
    """


class ProtocolViolation(LedgerClientError):
    """The server answered a stream item out of order (a server bug)."""
