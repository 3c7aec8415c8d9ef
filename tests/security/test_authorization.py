"""Every RPC of the three services, called as every kind of caller, on the real stack.

For each method of IssuerGatewayService, LedgerAdminService and TranscriptQueryService (taken
from the service descriptors, so a new method is covered without editing this file):

- no token, a malformed header and an unknown token: UNAUTHENTICATED;
- a token of the wrong kind (issuer / university / admin / learner): PERMISSION_DENIED;
- learners (OpenID Connect ID tokens from the local development provider): their own record
  and consent OK, another learner's PERMISSION_DENIED, issuer and admin methods
  PERMISSION_DENIED; an expired, forged, wrong-issuer or wrong-audience ID token
  UNAUTHENTICATED on every method, and never logged;
- the right kind with the wrong scope: issuer A on issuer B's course and completions, a
  university without consent (in a batch read: that learner's PERMISSION_DENIED inside the
  answer), and a consent revoked while a WatchTranscript is open (the stream ends with
  PERMISSION_DENIED).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import jwt
import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf import descriptor as pd

from learnerledger.v1 import (
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    learner_consent_pb2,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from learnerledger_devstack.dev_identity import DEV_AUDIENCE, DEV_ISSUER, DevIdentityProvider
from tests.support.authorization import (
    ADMIN,
    DIANA,
    EVE,
    GATEWAY,
    QUERY,
    Stack,
    bearer,
    invoke,
    request_message,
)
from tests.support.gateway import completion as wire_completion
from tests.support.ledger import (
    eventually,
)

pytestmark = pytest.mark.integration

#: Served by the ledger process, beside LedgerAdminService: learners' own consent.
LEARNER = learner_consent_pb2.DESCRIPTOR.services_by_name["LearnerConsentService"]
OK = grpc.StatusCode.OK
#: The log's tree heads and consistency proofs are public: any valid token may read them
#: (transcript_query.proto). Every other query method reads one learner's record.
PUBLIC_LOG_METHODS = {"GetCheckpoint", "GetConsistencyProof"}
LEARNER_QUERY_METHODS = [m for m in QUERY.methods if m.name not in PUBLIC_LOG_METHODS]
#: Batch reads answer each learner on its own: no consent is that learner's PERMISSION_DENIED
#: inside an OK response (the call itself is refused only for the caller).
BATCH_QUERY_METHODS = {"BatchGetTranscripts"}
#: Who read my record: the learner alone may list it.
LEARNER_ONLY_QUERY_METHODS = {"ListRecordAccesses"}


async def call(
    channel: grpc.aio.Channel,
    service: pd.ServiceDescriptor,
    method: pd.MethodDescriptor,
    metadata: tuple[tuple[str, str], ...],
    **fields: Any,
) -> grpc.StatusCode:
    """Call any method generically; the status code it ends with (OK when it succeeded)."""
    failed = await invoke(channel, service, method, request_message(method, **fields), metadata)
    return OK if failed is None else failed.code()


BAD_CREDENTIALS = [
    (),
    (("authorization", "Bearer"),),
    (("authorization", "Basic c3dheWFtOnB3"),),
    bearer("lli_000000000000_not-a-real-token"),
]


async def test_no_or_unknown_token_is_unauthenticated_on_every_method(services: Stack) -> None:
    calls = 0
    for channel, service in (
        (services.gateway, GATEWAY),
        (services.admin, ADMIN),
        (services.query, QUERY),
        (services.admin, LEARNER),
    ):
        for method in service.methods:
            for metadata in BAD_CREDENTIALS:
                code = await call(channel, service, method, metadata, learner_id=DIANA)
                assert code is grpc.StatusCode.UNAUTHENTICATED, (method.full_name, metadata, code)
                calls += 1
    print(f"{calls} unauthenticated calls refused")
    assert calls == 4 * (
        len(GATEWAY.methods) + len(ADMIN.methods) + len(QUERY.methods) + len(LEARNER.methods)
    )


async def test_a_token_of_the_wrong_kind_is_permission_denied_on_every_method(
    services: Stack,
) -> None:
    wrong = {
        GATEWAY.full_name: ("du", "admin", "diana"),
        ADMIN.full_name: ("swayam", "du", "diana"),
        QUERY.full_name: ("swayam",),  # admins may read transcripts (ops), issuers may not
        LEARNER.full_name: ("swayam", "du", "admin"),  # learners' own consent only
    }
    calls = 0
    for channel, service in (
        (services.gateway, GATEWAY),
        (services.admin, ADMIN),
        (services.query, QUERY),
        (services.admin, LEARNER),
    ):
        methods = LEARNER_QUERY_METHODS if service is QUERY else service.methods
        for method in methods:
            wrong_kinds = wrong[service.full_name]
            if method.name in LEARNER_ONLY_QUERY_METHODS:
                wrong_kinds = ("swayam", "du", "admin")
            for who in wrong_kinds:
                code = await call(
                    channel, service, method, bearer(services.tokens[who]), learner_id=DIANA
                )
                assert code is grpc.StatusCode.PERMISSION_DENIED, (method.full_name, who, code)
                calls += 1
    print(f"{calls} wrong-kind calls refused")
    assert calls == (
        3 * len(GATEWAY.methods)
        + 3 * len(ADMIN.methods)
        + len(LEARNER_QUERY_METHODS)
        + 2 * len(LEARNER_ONLY_QUERY_METHODS)
        + 3 * len(LEARNER.methods)
    )


async def test_the_public_log_methods_answer_every_kind_of_valid_token(services: Stack) -> None:
    """Tree heads and consistency proofs: issuers, universities and admins alike are let
    through (nothing is signed yet in this fixture: NOT_FOUND / OUT_OF_RANGE, not a refusal)."""
    assert {m.name for m in QUERY.methods} >= PUBLIC_LOG_METHODS
    for method in (QUERY.methods_by_name[name] for name in sorted(PUBLIC_LOG_METHODS)):
        for who in ("swayam", "du", "admin", "diana"):
            code = await call(
                services.query, QUERY, method, bearer(services.tokens[who]),
                from_size=1, to_size=1,
            )  # fmt: skip
            assert code in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE, OK}, (
                method.name, who, code,
            )  # fmt: skip


async def test_the_right_kind_of_token_is_let_through(services: Stack) -> None:
    """Control: the same calls with the right token are not refused for want of rights."""
    refused = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
    for channel, service, who in (
        (services.gateway, GATEWAY, "swayam"),
        (services.admin, ADMIN, "admin"),
        (services.query, QUERY, "du"),
        (services.query, QUERY, "admin"),
        (services.query, QUERY, "diana"),
        (services.admin, LEARNER, "diana"),
    ):
        for method in service.methods:
            if method.name in LEARNER_ONLY_QUERY_METHODS and who != "diana":
                continue  # their refusal is the wrong-kind test's
            code = await call(
                channel,
                service,
                method,
                bearer(services.tokens[who]),
                learner_id=DIANA,
                sequence=1,
                completion_id="az-1",
                university_id="no-such-reader",  # NOT_FOUND: not a refusal, changes nothing
                purpose="authorization test",
                expire_time=_in_an_hour(),
            )
            assert code not in refused, (method.full_name, who, code)


async def test_an_issuer_cannot_use_or_read_another_issuers_courses_and_completions(
    services: Stack, database_url: str
) -> None:
    gateway = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(services.gateway)
    pb = issuer_gateway_pb2
    nptel, swayam = bearer(services.tokens["nptel"]), bearer(services.tokens["swayam"])
    # nptel submits on swayam's course ml-101: answered as for an unknown course (the answer
    # does not tell that the id exists elsewhere): unary INVALID_ARGUMENT, stream item REJECTED
    foreign = wire_completion("nptel-on-swayam", learner_id=EVE, course_id="ml-101")
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await gateway.SubmitCompletion(
            pb.SubmitCompletionRequest(completion=foreign), metadata=nptel
        )
    assert denied.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (
        denied.value.details()
        == "1 invalid field(s): completion.course_id: unknown course 'ml-101'"
    )

    async def items() -> AsyncIterator[Any]:
        yield pb.StreamCompletionsRequest(completion=foreign)

    [answer] = [r async for r in gateway.StreamCompletions(items(), metadata=nptel)]
    assert answer.status == pb.ACCEPTANCE_STATUS_REJECTED
    assert answer.reason == "INVALID_ARGUMENT"

    # swayam's completion az-1 is invisible to nptel, and nptel cannot revoke it
    status = await gateway.GetCompletionStatus(
        pb.GetCompletionStatusRequest(completion_id="az-1"), metadata=swayam
    )
    assert status.state == pb.COMPLETION_STATE_CREDITED
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await gateway.GetCompletionStatus(
            pb.GetCompletionStatusRequest(completion_id="az-1"), metadata=nptel
        )
    assert hidden.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as not_theirs:
        await gateway.RevokeCompletion(
            pb.RevokeCompletionRequest(completion_id="az-1", reason="hostile"), metadata=nptel
        )
    assert not_theirs.value.code() is grpc.StatusCode.NOT_FOUND
    # Naming the learner gets a revocation through the gateway, but it is nptel's revocation
    # of nptel's completion az-1, which does not exist: swayam's credit stands.
    await gateway.RevokeCompletion(
        pb.RevokeCompletionRequest(completion_id="az-1", reason="hostile", learner_id=DIANA),
        metadata=nptel,
    )

    async def decided() -> bool:
        connection = await asyncpg.connect(database_url)
        try:
            return bool(
                await connection.fetchval(
                    "SELECT count(*) FROM rejections WHERE issuer_id = 'nptel' "
                    "AND completion_id = 'az-1'"
                )
            )
        finally:
            await connection.close()

    await eventually(decided, what="the ledger to reject nptel's revocation")
    after = await gateway.GetCompletionStatus(
        pb.GetCompletionStatusRequest(completion_id="az-1"), metadata=swayam
    )
    assert after.state == pb.COMPLETION_STATE_CREDITED


async def test_a_university_reads_only_with_consent(services: Stack) -> None:
    du = bearer(services.tokens["du"])
    assert {m.name for m in QUERY.methods} >= BATCH_QUERY_METHODS
    for method in LEARNER_QUERY_METHODS:
        if method.name in BATCH_QUERY_METHODS | LEARNER_ONLY_QUERY_METHODS:
            continue
        # Sequence 2 is DIANA's credit (1 is her consent): ExportCredential exports credits.
        with_consent = await call(services.query, QUERY, method, du, learner_id=DIANA, sequence=2)
        without = await call(services.query, QUERY, method, du, learner_id=EVE, sequence=1)
        assert with_consent is OK, method.name
        assert without is grpc.StatusCode.PERMISSION_DENIED, method.name
    query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(services.query)
    batch = await query.BatchGetTranscripts(
        transcript_query_pb2.BatchGetTranscriptsRequest(learner_ids=[DIANA, EVE]), metadata=du
    )
    assert [r.WhichOneof("result") for r in batch.results] == ["transcript", "error"]
    assert batch.results[0].transcript.learner_id == DIANA
    assert batch.results[1].error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert batch.results[1].learner_id == EVE


async def test_consent_revoked_mid_watch_ends_the_stream_with_permission_denied(
    services: Stack, database_url: str
) -> None:
    query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(services.query)
    admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(services.admin)
    watch = query.WatchTranscript(
        transcript_query_pb2.WatchTranscriptRequest(learner_id=DIANA),
        metadata=bearer(services.tokens["du"]),
        timeout=60,
    )
    first = await watch.read()
    assert first.transcript.learner_id == DIANA
    await admin.RevokeConsent(
        ledger_admin_pb2.RevokeConsentRequest(learner_id=DIANA, university_id="du"),
        metadata=bearer(services.tokens["admin"]),
    )
    with pytest.raises(grpc.aio.AioRpcError) as ended:  # noqa: PT012
        async with asyncio.timeout(45):
            while True:
                message = await watch.read()
                assert message is not grpc.aio.EOF, "the watch ended without an error"
    assert ended.value.code() is grpc.StatusCode.PERMISSION_DENIED
    # and a new call is refused too
    with contextlib.suppress(Exception):
        watch.cancel()
    code = await call(services.query, QUERY, QUERY.methods_by_name["GetTranscript"],
                      bearer(services.tokens["du"]), learner_id=DIANA)  # fmt: skip
    assert code is grpc.StatusCode.PERMISSION_DENIED


def _in_an_hour() -> Any:
    from learnerledger.wire.instants import to_timestamp

    return to_timestamp(datetime.now(UTC) + timedelta(hours=1))


async def test_a_learner_reads_and_changes_only_their_own_record(services: Stack) -> None:
    diana = bearer(services.tokens["diana"])
    for method in LEARNER_QUERY_METHODS:
        if method.name in BATCH_QUERY_METHODS:
            continue
        # Sequence 2 is DIANA's credit (1 is her consent): ExportCredential exports credits.
        own = await call(services.query, QUERY, method, diana, learner_id=DIANA, sequence=2)
        other = await call(services.query, QUERY, method, diana, learner_id=EVE, sequence=1)
        assert own is OK, method.name
        assert other is grpc.StatusCode.PERMISSION_DENIED, method.name
    failed = await invoke(
        services.query, QUERY, QUERY.methods_by_name["GetTranscript"],
        transcript_query_pb2.GetTranscriptRequest(learner_id=EVE), diana,
    )  # fmt: skip
    assert failed is not None
    assert failed.details() == "a signed-in learner reads only their own record"
    query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(services.query)
    batch = await query.BatchGetTranscripts(
        transcript_query_pb2.BatchGetTranscriptsRequest(learner_ids=[DIANA, EVE]), metadata=diana
    )
    assert [r.WhichOneof("result") for r in batch.results] == ["transcript", "error"]
    assert batch.results[1].error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    for method in LEARNER.methods:
        fields = {"university_id": "acme-hr", "purpose": "test", "expire_time": _in_an_hour()}
        own = await call(services.admin, LEARNER, method, diana, learner_id=DIANA, **fields)
        other = await call(services.admin, LEARNER, method, diana, learner_id=EVE, **fields)
        assert own is OK, method.name
        assert other is grpc.StatusCode.PERMISSION_DENIED, method.name


def _signed(provider: DevIdentityProvider, key: Any = None, **claims: Any) -> str:
    """An ID token with the development provider's kid, signed by ``key`` (default: its own)."""
    now = int(datetime.now(UTC).timestamp())
    body = {"iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "apaar_id": DIANA, "iat": now, "exp": now + 600}
    body.update(claims)
    own = serialization.load_pem_private_key(provider.key_file.read_bytes(), password=None)
    kid = json.loads(provider.jwks_file.read_text())["keys"][0]["kid"]
    return jwt.encode(body, key or own, algorithm="EdDSA", headers={"kid": kid})


async def test_bad_id_tokens_are_unauthenticated_on_every_method_and_never_logged(
    services: Stack,
) -> None:
    now = int(datetime.now(UTC).timestamp())
    bad = {
        "expired": _signed(services.provider, iat=now - 7200, exp=now - 3600),
        "forged": _signed(services.provider, key=ed25519.Ed25519PrivateKey.generate()),
        "wrong issuer": _signed(services.provider, iss="https://evil.example/"),
        "wrong audience": _signed(services.provider, aud="another-service"),
    }
    messages = {
        "expired": "the ID token has expired; sign in again",
        "forged": "the ID token's signature does not verify with the identity provider's key",
        "wrong issuer": (
            f"the ID token was not issued by the configured identity provider ({DEV_ISSUER})"
        ),
        "wrong audience": (
            f"the ID token is not meant for this service (audience must include {DEV_AUDIENCE})"
        ),
    }
    calls = 0
    with structlog.testing.capture_logs() as logged:
        for channel, service in (
            (services.gateway, GATEWAY),
            (services.admin, ADMIN),
            (services.query, QUERY),
            (services.admin, LEARNER),
        ):
            for method in service.methods:
                for what, token in bad.items():
                    failed = await invoke(
                        channel,
                        service,
                        method,
                        request_message(method, learner_id=DIANA),
                        bearer(token),
                    )
                    assert failed is not None, (method.full_name, what)
                    assert failed.code() is grpc.StatusCode.UNAUTHENTICATED, (
                        method.full_name, what, failed.code(),
                    )  # fmt: skip
                    assert failed.details() == messages[what], (method.full_name, what)
                    calls += 1
    print(f"{calls} bad ID tokens refused; {len(logged)} log events checked")
    text = repr(logged)
    for token in bad.values():
        for part in token.split("."):
            assert part not in text
