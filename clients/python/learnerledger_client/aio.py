"""The asyncio clients: ``IssuerClient`` for partners, ``RegistrarClient`` for universities.

Retries: only UNAVAILABLE, and only on calls that are safe to repeat. Every call here is: a
completion's event id is derived from (issuer, completion_id), so resending it cannot credit it
twice; a revocation is idempotent in the same way; reads change nothing. Any other status is
raised as ``CallFailed`` at once.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from learnerledger.v1 import (
    common_pb2,
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from learnerledger_client.config import ClientConfig
from learnerledger_client.errors import CallFailed, ProtocolViolation, RetriesExhausted
from learnerledger_client.outcomes import (
    MAX_LEARNERS_PER_BATCH,
    LearnerTranscript,
    SubmitOutcome,
)

T = TypeVar("T")

Completions = Iterable[common_pb2.Completion] | AsyncIterable[common_pb2.Completion]


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


#: What grpc-python reports when it could not send a stream message because the connection broke
#: under it: set locally by the client's core (``set_internal_error``), never sent by a server.
LOCAL_SEND_FAILURE = "Internal error from Core"


def _transport_broke(error: grpc.aio.AioRpcError) -> bool:
    """True if the stream failed because the connection did (UNAVAILABLE, or a send that failed
    on a broken connection), not because the server refused anything."""
    code = error.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    return bool(code == grpc.StatusCode.INTERNAL and error.details() == LOCAL_SEND_FAILURE)


def _jittered(seconds: float) -> float:
    return seconds * (0.8 + 0.4 * random.random())  # jitter, not a secret


class _Client:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._channel = config.aio_channel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run a unary call with the configured deadline, retrying UNAVAILABLE."""
        policy = self.config.retry
        attempt = 0
        while True:
            try:
                return await call()
            except grpc.aio.AioRpcError as error:
                code, details = error.code(), error.details() or ""
                if code != grpc.StatusCode.UNAVAILABLE:
                    raise CallFailed(method, code, details) from error
                attempt += 1
                if attempt >= policy.max_attempts:
                    raise RetriesExhausted(method, code, details) from error
                await asyncio.sleep(_jittered(policy.backoff(attempt - 1)))


class IssuerClient(_Client):
    """A partner's (issuer's) client of the IssuerGatewayService."""

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(config)
        self._stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(self._channel)

    async def submit_many(self, completions: Completions) -> list[SubmitOutcome]:
        """Submit every completion; one outcome per completion, in order."""
        return [outcome async for outcome in self.submit_stream(completions)]

    async def submit_stream(self, completions: Completions) -> AsyncIterator[SubmitOutcome]:
        """Stream the completions through StreamCompletions and yield one outcome per
        completion, in input order, as the gateway answers.

        At most ``config.window`` completions await an answer at once, so memory stays
        constant whatever the input size. When the stream breaks with UNAVAILABLE (or the
        connection breaks under a send, or it goes ``ack_timeout_s`` without an answer while
        completions wait) the unanswered completions are resent, unchanged and in order, on a
        new stream after a backoff. Any other error status ends the submission with
        ``CallFailed``; outcomes already yielded stand.
        """
        feed = _Feed(_aiter(completions))
        policy = self.config.retry
        failures = 0
        while True:
            attempt = _Attempt(feed, self.config.window)
            call = self._stub.StreamCompletions(
                attempt.requests(), metadata=self.config.metadata,
                timeout=self.config.stream_timeout_s,
            )  # fmt: skip
            failure: grpc.aio.AioRpcError | None = None
            # One read at a time, kept across ack timeouts (cancelling a read cancels the call).
            reading: asyncio.Future[Any] | None = None
            try:
                while True:
                    if reading is None:
                        reading = asyncio.ensure_future(call.read())
                    done, _ = await asyncio.wait({reading}, timeout=self.config.ack_timeout_s)
                    if not done:
                        if not attempt.inflight:
                            continue  # nothing awaits an answer: the source is slow
                        break  # items wait and the gateway is silent: abandon the stream
                    response, reading = reading.result(), None
                    if response is grpc.aio.EOF:
                        break
                    sends = await attempt.answered(response.completion_id)
                    failures = 0
                    yield SubmitOutcome.from_response(response, sends)
            except grpc.aio.AioRpcError as error:
                failure = error
            finally:
                call.cancel()
                if reading is not None and not reading.done():
                    reading.cancel()
            # Whatever was taken and not answered goes back to the front of the feed, in order;
            # this attempt's request generator takes nothing more from it.
            await feed.take_back(attempt)
            if feed.error is not None:
                raise feed.error
            if feed.exhausted and not feed.unsent:
                return
            if failure is not None and not _transport_broke(failure):
                raise CallFailed(
                    "StreamCompletions", failure.code(), failure.details() or ""
                ) from failure
            failures += 1
            code = failure.code() if failure is not None else grpc.StatusCode.DEADLINE_EXCEEDED
            details = (failure.details() if failure is not None else None) or "no answer in time"
            if failures >= policy.max_attempts:
                raise RetriesExhausted("StreamCompletions", code, details) from failure
            await asyncio.sleep(_jittered(policy.backoff(failures - 1)))

    async def submit(self, completion: common_pb2.Completion) -> SubmitOutcome:
        """Submit one completion (a stream of one: invalid input is a REJECTED outcome)."""
        return (await self.submit_many([completion]))[0]

    async def get_status(
        self, completion_id: str
    ) -> issuer_gateway_pb2.GetCompletionStatusResponse:
        request = issuer_gateway_pb2.GetCompletionStatusRequest(completion_id=completion_id)
        return await self._unary(
            "GetCompletionStatus",
            lambda: self._stub.GetCompletionStatus(
                request, metadata=self.config.metadata, timeout=self.config.timeout_s
            ),
        )

    async def revoke(
        self, completion_id: str, learner_id: str, reason: str
    ) -> issuer_gateway_pb2.RevokeCompletionResponse:
        request = issuer_gateway_pb2.RevokeCompletionRequest(
            completion_id=completion_id, learner_id=learner_id, reason=reason
        )
        return await self._unary(
            "RevokeCompletion",
            lambda: self._stub.RevokeCompletion(
                request, metadata=self.config.metadata, timeout=self.config.timeout_s
            ),
        )


class _Feed:
    """The completions still to be answered: those taken back from a broken stream first (in
    order, with how often each was sent), then the rest of the source. One lock orders every
    take, so a stream being abandoned can never lose or reorder an item."""

    def __init__(self, source: AsyncIterator[common_pb2.Completion]) -> None:
        self.source = source
        self.unsent: deque[tuple[common_pb2.Completion, int]] = deque()
        self.lock = asyncio.Lock()
        self.exhausted = False
        self.error: BaseException | None = None

    async def take_back(self, attempt: _Attempt) -> None:
        async with self.lock:
            attempt.stale = True
            self.unsent.extendleft(reversed(attempt.inflight))
            attempt.inflight.clear()


class _Attempt:
    """One StreamCompletions call: what it sent and awaits an answer for, bounded by the window."""

    def __init__(self, feed: _Feed, window: int) -> None:
        self.feed = feed
        self.window = window
        self.inflight: deque[tuple[common_pb2.Completion, int]] = deque()
        self.room = asyncio.Condition()
        self.stale = False

    async def requests(self) -> AsyncIterator[issuer_gateway_pb2.StreamCompletionsRequest]:
        feed = self.feed
        while True:
            async with self.room:
                await self.room.wait_for(lambda: len(self.inflight) < self.window)
            async with feed.lock:
                if self.stale:
                    return
                if feed.unsent:
                    item, sends = feed.unsent.popleft()
                elif feed.exhausted or feed.error is not None:
                    return
                else:
                    try:
                        item, sends = await anext(feed.source), 0
                    except StopAsyncIteration:
                        feed.exhausted = True
                        return
                    except Exception as error:  # noqa: BLE001 (raised by submit_stream)
                        feed.error = error
                        return
                if self.stale:  # abandoned while the source was read: keep the item
                    feed.unsent.appendleft((item, sends))
                    return
                self.inflight.append((item, sends + 1))
            yield issuer_gateway_pb2.StreamCompletionsRequest(completion=item)

    async def answered(self, completion_id: str) -> int:
        """Release the item an answer is for (the oldest unanswered one); how often it was
        sent."""
        if not self.inflight:
            raise ProtocolViolation("an answer to a completion that was not sent")
        item, sends = self.inflight.popleft()
        if completion_id and completion_id != item.completion_id:
            raise ProtocolViolation(
                f"answer for {completion_id!r}, expected {item.completion_id!r}"
            )
        async with self.room:
            self.room.notify_all()
        return sends


class RegistrarClient(_Client):
    """A university's (registrar's) client of the TranscriptQueryService."""

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(config)
        self._stub = transcript_query_pb2_grpc.TranscriptQueryServiceStub(self._channel)

    async def get_transcript(
        self,
        learner_id: str,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        min_position: int = 0,
    ) -> transcript_query_pb2.Transcript:
        """``as_of``: what the learner held then (completion, validity, revocation and
        redemption times); ``known_at``: only what the ledger had recorded by then."""
        request = transcript_query_pb2.GetTranscriptRequest(
            learner_id=learner_id, min_position=min_position
        )
        if as_of is not None:
            request.as_of.FromDatetime(as_of)
        if known_at is not None:
            request.known_at.FromDatetime(known_at)
        response: transcript_query_pb2.GetTranscriptResponse = await self._unary(
            "GetTranscript",
            lambda: self._stub.GetTranscript(
                request, metadata=self.config.metadata, timeout=self.config.timeout_s
            ),
        )
        return response.transcript

    async def batch_get_transcripts(
        self,
        learner_ids: Iterable[str] | AsyncIterable[str],
        *,
        batch_size: int = MAX_LEARNERS_PER_BATCH,
    ) -> list[LearnerTranscript]:
        """The current transcript of every learner, or why it was refused: one result per id,
        in input order (see ``batch_get_transcripts_stream``)."""
        return [
            result
            async for result in self.batch_get_transcripts_stream(
                learner_ids, batch_size=batch_size
            )
        ]

    async def batch_get_transcripts_stream(
        self,
        learner_ids: Iterable[str] | AsyncIterable[str],
        *,
        batch_size: int = MAX_LEARNERS_PER_BATCH,
    ) -> AsyncIterator[LearnerTranscript]:
        """Yield one ``LearnerTranscript`` per id, in input order, reading the ids lazily and
        sending them in BatchGetTranscripts calls of at most ``batch_size`` (the server's
        maximum, 100, by default). A learner without consent, unknown or with an invalid id is
        that learner's result (``status``), not an error; the call as a whole raises
        ``CallFailed`` only when the server refuses the caller (UNAUTHENTICATED,
        PERMISSION_DENIED for a token that may not read transcripts) or the request. Each call
        is retried on UNAVAILABLE (a read: safe)."""
        if batch_size < 1:
            raise ValueError("batch_size must be 1 or more")
        chunk: list[str] = []
        async for learner_id in _aiter(learner_ids):
            chunk.append(learner_id)
            if len(chunk) == batch_size:
                for result in await self._batch_get(chunk):
                    yield result
                chunk = []
        if chunk:
            for result in await self._batch_get(chunk):
                yield result

    async def _batch_get(self, learner_ids: list[str]) -> list[LearnerTranscript]:
        request = transcript_query_pb2.BatchGetTranscriptsRequest(learner_ids=learner_ids)
        response: transcript_query_pb2.BatchGetTranscriptsResponse = await self._unary(
            "BatchGetTranscripts",
            lambda: self._stub.BatchGetTranscripts(
                request, metadata=self.config.metadata, timeout=self.config.timeout_s
            ),
        )
        answered = [result.learner_id for result in response.results]
        if answered != learner_ids:
            raise ProtocolViolation(
                f"BatchGetTranscripts answered {len(answered)} learners for {len(learner_ids)}"
                " requested, or not in the order requested"
            )
        return [LearnerTranscript.from_result(result) for result in response.results]

    async def list_credentials(
        self, learner_id: str, *, filter: str = "", page_size: int = 0
    ) -> AsyncIterator[transcript_query_pb2.Credential]:
        """Every matching credential, in sequence order, following the pages."""
        page_token = ""
        while True:
            request = transcript_query_pb2.ListCredentialsRequest(
                learner_id=learner_id, filter=filter, page_size=page_size, page_token=page_token
            )
            response: transcript_query_pb2.ListCredentialsResponse = await self._unary(
                "ListCredentials",
                lambda request=request: self._stub.ListCredentials(  # type: ignore[misc]
                    request, metadata=self.config.metadata, timeout=self.config.timeout_s
                ),
            )
            for credential in response.credentials:
                yield credential
            page_token = response.next_page_token
            if not page_token:
                return

    async def watch(
        self, learner_id: str
    ) -> AsyncIterator[transcript_query_pb2.WatchTranscriptResponse]:
        """The current transcript, then one after every entry applied to the learner, until
        the caller stops iterating or ``stream_timeout_s`` passes. Not resumed on error: a new
        watch starts with the current transcript, so the caller simply watches again."""
        call = self._stub.WatchTranscript(
            transcript_query_pb2.WatchTranscriptRequest(learner_id=learner_id),
            metadata=self.config.metadata,
            timeout=self.config.stream_timeout_s,
        )
        try:
            async for update in call:
                yield update
        except grpc.aio.AioRpcError as error:
            raise CallFailed("WatchTranscript", error.code(), error.details() or "") from error
        finally:
            call.cancel()
