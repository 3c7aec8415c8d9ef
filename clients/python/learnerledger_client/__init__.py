"""Python client of the Learner Ledger API.

``learnerledger_client.aio`` holds the asyncio clients, ``learnerledger_client.blocking`` their
blocking twins; both take a ``ClientConfig``. See README.md.
"""

from learnerledger_client.config import ClientConfig, RetryPolicy, TlsConfig
from learnerledger_client.errors import (
    CallFailed,
    LedgerClientError,
    ProtocolViolation,
    RetriesExhausted,
)
from learnerledger_client.outcomes import Acceptance, FieldProblem, SubmitOutcome

__all__ = [
    "Acceptance",
    "CallFailed",
    "ClientConfig",
    "FieldProblem",
    "LedgerClientError",
    "ProtocolViolation",
    "RetriesExhausted",
    "RetryPolicy",
    "SubmitOutcome",
    "TlsConfig",
]
