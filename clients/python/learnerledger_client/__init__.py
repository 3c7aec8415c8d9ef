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
from learnerledger_client.outcomes import (
    MAX_LEARNERS_PER_BATCH,
    Acceptance,
    FieldProblem,
    LearnerTranscript,
    ReadStatus,
    SubmitOutcome,
)

__all__ = [
    "MAX_LEARNERS_PER_BATCH",
    "Acceptance",
    "CallFailed",
    "ClientConfig",
    "FieldProblem",
    "LearnerTranscript",
    "LedgerClientError",
    "ProtocolViolation",
    "ReadStatus",
    "RetriesExhausted",
    "RetryPolicy",
    "SubmitOutcome",
    "TlsConfig",
]
