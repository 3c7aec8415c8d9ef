"""The blocking flavour: the asyncio clients driven by a private event loop, for scripts and
programs that are not asynchronous. Not thread-safe: one client per thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Generic, Self, TypeVar

from learnerledger.v1 import common_pb2, issuer_gateway_pb2, transcript_query_pb2
from learnerledger_client import aio
from learnerledger_client.config import ClientConfig
from learnerledger_client.outcomes import (
    MAX_LEARNERS_PER_BATCH,
    LearnerTranscript,
    SubmitOutcome,
)

T = TypeVar("T")
C = TypeVar("C", bound=aio._Client)


class _Blocking(Generic[C]):
    def __init__(self, kind: Callable[[ClientConfig], C], config: ClientConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = self._loop.run_until_complete(_make(kind, config))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._loop.run_until_complete(anext(iterator))
                except StopAsyncIteration:
                    return
        finally:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                self._loop.run_until_complete(closer())

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()


class IssuerClient(_Blocking[aio.IssuerClient]):
    """Blocking twin of ``learnerledger_client.aio.IssuerClient``."""

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(aio.IssuerClient, config)

    def submit_stream(
        self, completions: Iterable[common_pb2.Completion]
    ) -> Iterator[SubmitOutcome]:
        return self._iterate(self._client.submit_stream(completions))

    def submit_many(self, completions: Iterable[common_pb2.Completion]) -> list[SubmitOutcome]:
        return list(self.submit_stream(completions))

    def submit(self, completion: common_pb2.Completion) -> SubmitOutcome:
        return self._loop.run_until_complete(self._client.submit(completion))

    def get_status(self, completion_id: str) -> issuer_gateway_pb2.GetCompletionStatusResponse:
        return self._loop.run_until_complete(self._client.get_status(completion_id))

    def revoke(
        self, completion_id: str, learner_id: str, reason: str
    ) -> issuer_gateway_pb2.RevokeCompletionResponse:
        return self._loop.run_until_complete(self._client.revoke(completion_id, learner_id, reason))


class RegistrarClient(_Blocking[aio.RegistrarClient]):
    """Blocking twin of ``learnerledger_client.aio.RegistrarClient``."""

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(aio.RegistrarClient, config)

    def get_transcript(
        self,
        learner_id: str,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        min_position: int = 0,
    ) -> transcript_query_pb2.Transcript:
        return self._loop.run_until_complete(
            self._client.get_transcript(
                learner_id, as_of=as_of, known_at=known_at, min_position=min_position
            )
        )

    def batch_get_transcripts(
        self, learner_ids: Iterable[str], *, batch_size: int = MAX_LEARNERS_PER_BATCH
    ) -> list[LearnerTranscript]:
        return list(self.batch_get_transcripts_stream(learner_ids, batch_size=batch_size))

    def batch_get_transcripts_stream(
        self, learner_ids: Iterable[str], *, batch_size: int = MAX_LEARNERS_PER_BATCH
    ) -> Iterator[LearnerTranscript]:
        return self._iterate(
            self._client.batch_get_transcripts_stream(learner_ids, batch_size=batch_size)
        )

    def list_credentials(
        self, learner_id: str, *, filter: str = "", page_size: int = 0
    ) -> Iterator[transcript_query_pb2.Credential]:
        return self._iterate(
            self._client.list_credentials(learner_id, filter=filter, page_size=page_size)
        )

    def watch(self, learner_id: str) -> Iterator[transcript_query_pb2.WatchTranscriptResponse]:
        return self._iterate(self._client.watch(learner_id))


async def _make(kind: Callable[[ClientConfig], T], config: ClientConfig) -> T:
    """Create the asyncio client inside the private loop (its channel binds to that loop)."""
    return kind(config)
