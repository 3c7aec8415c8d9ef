"""Credits as verifiable credentials on the real stack: the ledger, projector and
query service run in-process on real Kafka and PostgreSQL; a university exports a credit over
gRPC and a third party verifies it as a verifier would, with its own JOSE library (joserfc;
the service signs with PyJWT): the key comes from the DID document served over HTTP, the
revocation bit from the served status list (active, then revoked after the issuer's
revocation), and a credential with one changed byte or signed by another key is refused. A
key rotation keeps the earlier credential verifying."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import OKPKey

from learnerledger.ctl.main import build_parser
from learnerledger.ctl.main import run as ledgerctl_run
from learnerledger.domain.credentials import (
    decode_status_list,
    did_web_document_url,
    status_bit,
)
from learnerledger.domain.vc_jose import sign_credential
from learnerledger.ledger.verification import generate_signing_key
from learnerledger.query.service import run_query
from learnerledger.query.settings import QuerySettings
from learnerledger.v1 import transcript_query_pb2 as pb
from learnerledger.v1 import transcript_query_pb2_grpc as pb_grpc
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    revocation,
    running_ledger,
    seed_courses,
)
from tests.support.ledger import seed_catalog as seed
from tests.support.ports import free_ports
from tests.support.projector import projected, running_projector
from tests.support.query import bearer, tokens
from tests.support.standards import OB3_SCHEMA

pytestmark = pytest.mark.integration

FRIDA, GUS = "533333333333", "544444444444"


@contextlib.asynccontextmanager
async def running_query(
    database_url: str, key_file: Path, http_port: int
) -> AsyncIterator[pb_grpc.TranscriptQueryServiceStub]:
    settings = QuerySettings(
        database_url=database_url,
        grpc_port=0,
        metrics_port=0,
        http_port=http_port,
        credential_signing_key_file=key_file,
        credential_issuer_name="Learner Ledger (test)",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    bound: asyncio.Future[int] = loop.create_future()
    task = asyncio.create_task(run_query(settings, stop, bound, loop.create_future()))
    port = await asyncio.wait_for(bound, 15)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.TranscriptQueryServiceStub(channel)
            stub.address = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
            yield stub
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


# -- the verifier: nothing of the service's code, only HTTP and joserfc ----------------------
def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload without verifying (to learn the issuer and kid to resolve)."""
    head, payload, _ = token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(head), decode(payload)


async def resolve_key(session: aiohttp.ClientSession, token: str) -> OKPKey:
    """did:web resolution (over http: the local stack has no TLS) and the key named by kid."""
    header, credential = _unverified(token)
    issuer = credential["issuer"]
    did = issuer["id"] if isinstance(issuer, dict) else issuer
    assert header["kid"].startswith(did + "#")
    async with session.get(did_web_document_url(did, scheme="http")) as response:
        assert response.status == 200
        document = json.loads(await response.text())
    assert document["id"] == did
    assert header["kid"] in document["assertionMethod"]
    [method] = [m for m in document["verificationMethod"] if m["id"] == header["kid"]]
    return OKPKey.import_key(method["publicKeyJwk"])


async def verify(session: aiohttp.ClientSession, token: str) -> dict[str, Any]:
    """The credential if its JWS verifies with the issuer's DID key (joserfc)."""
    key = await resolve_key(session, token)
    with warnings.catch_warnings():
        # RFC 9864 prefers "Ed25519" to "EdDSA"; VC-JOSE-COSE and PyJWT still name it EdDSA.
        warnings.simplefilter("ignore")
        verified = jws.deserialize_compact(token, key, algorithms=["EdDSA"])
    assert verified.headers()["typ"] == "vc+jwt"
    payload: dict[str, Any] = json.loads(verified.payload)
    return payload


async def revoked(session: aiohttp.ClientSession, credential: dict[str, Any]) -> bool:
    """The credential's bit in the served (and verified) status list credential."""
    entry = credential["credentialStatus"]
    assert entry["type"] == "BitstringStatusListEntry"
    async with session.get(entry["statusListCredential"]) as response:
        assert response.status == 200
        assert response.content_type == "application/vc+jwt"
        token = await response.text()
    status_list = await verify(session, token)
    assert status_list["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    subject = status_list["credentialSubject"]
    assert subject["statusPurpose"] == entry["statusPurpose"] == "revocation"
    bits = decode_status_list(subject["encodedList"])
    assert len(bits) * 8 >= 131_072
    return status_bit(bits, int(entry["statusListIndex"]))


def ob3_errors(credential: dict[str, Any]) -> list[str]:
    """Violations of 1EdTech's OB 3.0 schema (../shared/standards; the unit tests skip when it
    is absent, this test then checks everything else)."""
    if not OB3_SCHEMA.exists():
        warnings.warn(f"OB 3.0 schema not at {OB3_SCHEMA}: not validated here", stacklevel=2)
        return []
    validator = jsonschema.Draft201909Validator(
        json.loads(OB3_SCHEMA.read_text()),
        format_checker=jsonschema.Draft201909Validator.FORMAT_CHECKER,
    )
    return [error.message for error in validator.iter_errors(credential)]


async def ledgerctl(*argv: str) -> int:
    """``ledgerctl ARGV`` in a thread (it fetches over HTTP from the server in this loop)."""
    return await asyncio.to_thread(ledgerctl_run, build_parser().parse_args(list(argv)))


def one_byte_changed(token: str) -> str:
    """The same JWS with the credits in its payload changed by one byte."""
    head, payload, signature = token.split(".")
    body = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    at = body.index(b'"creditsEarned":3') + len(b'"creditsEarned":')
    body[at] = ord("9")
    return ".".join([head, base64.urlsafe_b64encode(bytes(body)).rstrip(b"=").decode(), signature])


async def consented_university(database_url: str) -> tuple[str, str]:
    await seed(database_url)
    await seed_courses(database_url, ["vc-course-1", "vc-course-2"])
    return await tokens(database_url)


async def test_an_exported_credit_verifies_with_another_jose_library_and_its_status_flips(
    kafka_bootstrap: str, database_url: str, topics: Any, tmp_path: Path
) -> None:
    university, admin = await consented_university(database_url)
    await produce(
        kafka_bootstrap,
        topics.completions,
        [
            consent(FRIDA),
            completion(FRIDA, "vc-1", course_id="vc-course-1"),
            completion(FRIDA, "vc-2", course_id="vc-course-2", score=91.0),
            completion(GUS, "vc-g1", course_id="vc-course-1"),
        ],
    )
    key_file, rotated_file = tmp_path / "credential.key", tmp_path / "credential-2.key"
    generate_signing_key(key_file)
    generate_signing_key(rotated_file)
    [http_port] = free_ports(1)
    async with (
        running_ledger(kafka_bootstrap, database_url, topics),
        running_projector(
            kafka_bootstrap, database_url, topics.ledger_entries, f"p-{topics.ledger_entries}"
        ),
        aiohttp.ClientSession() as session,
    ):
        await eventually(lambda: _projected_to(database_url, {FRIDA: 3, GUS: 1}), what="projection")
        async with running_query(database_url, key_file, http_port) as stub:
            exported = await stub.ExportCredential(
                pb.ExportCredentialRequest(learner_id=FRIDA, sequence=2),
                metadata=bearer(university),
            )
            token = exported.credential_jwt
            credential = await verify(session, token)
            assert credential == json.loads(exported.credential_json)
            assert not ob3_errors(credential)
            assert credential["issuer"]["id"] == f"did:web:127.0.0.1%3A{http_port}"
            assert credential["credentialSubject"]["achievement"]["name"] == "Course vc-course-1"
            assert credential["credentialSubject"]["creditsEarned"] == 3
            assert exported.status_list_credential == f"http://127.0.0.1:{http_port}/status/1"
            assert int(credential["credentialStatus"]["statusListIndex"]) == (
                exported.status_list_index
            )
            assert not await revoked(session, credential)

            # Exporting again: the same credential (stored index and salt); another credit:
            # another random index.
            again = await stub.ExportCredential(
                pb.ExportCredentialRequest(learner_id=FRIDA, sequence=2), metadata=bearer(admin)
            )
            assert json.loads(again.credential_json) == credential
            other = await stub.ExportCredential(
                pb.ExportCredentialRequest(learner_id=FRIDA, sequence=3), metadata=bearer(admin)
            )
            assert other.status_list_index != exported.status_list_index

            # Refused: one changed byte; a credential signed by another key under the
            # issuer's kid; the status list of another key.
            with pytest.raises(BadSignatureError):
                await verify(session, one_byte_changed(token))
            header, _ = _unverified(token)
            impostor = sign_credential(credential, Ed25519PrivateKey.generate(), header["kid"])
            with pytest.raises(BadSignatureError):
                await verify(session, impostor)

            # ledgerctl credential verify (PyJWT, the DID document over HTTP) agrees.
            good, bad = tmp_path / "good.jwt", tmp_path / "bad.jwt"
            good.write_text(token + "\n")
            bad.write_text(one_byte_changed(token))
            assert await ledgerctl("credential", "verify", str(good), "--http") == 0
            assert await ledgerctl("credential", "verify", str(bad), "--http") == 1
            (tmp_path / "impostor.jwt").write_text(impostor)
            assert await ledgerctl("credential", "verify", str(tmp_path / "impostor.jwt"),
                                   "--http") == 1  # fmt: skip

            # Authorized like GetTranscript; only credits are credentials.
            await _refusals(stub, university, admin)

            # The issuer revokes: the bit flips, measured from the revocation's ack.
            revoked_at = time.monotonic()
            await produce(kafka_bootstrap, topics.completions, [revocation(FRIDA, "vc-1")])
            await eventually(lambda: revoked(session, credential), what="the revocation bit")
            delay = time.monotonic() - revoked_at
            print(f"\nrevocation-to-status delay: {delay:.2f} s (polled every 0.2 s)")
            assert not await revoked(session, json.loads(other.credential_json))
            assert await ledgerctl("credential", "verify", str(good), "--http") == 1
            assert await ledgerctl("credential", "verify", str(good), "--http", "--no-status") == 0
            with pytest.raises(grpc.aio.AioRpcError) as gone:
                await stub.ExportCredential(
                    pb.ExportCredentialRequest(learner_id=FRIDA, sequence=2),
                    metadata=bearer(admin),
                )
            assert gone.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert "revoked" in (gone.value.details() or "")

        # Key rotation: a new key signs from now on; the DID document keeps the old one, so
        # the credential signed before still verifies (and its status is still served).
        async with running_query(database_url, rotated_file, http_port) as stub:
            fresh = await stub.ExportCredential(
                pb.ExportCredentialRequest(learner_id=FRIDA, sequence=3), metadata=bearer(admin)
            )
            assert fresh.key_id != exported.key_id
            assert await verify(session, fresh.credential_jwt)
            assert await verify(session, token) == credential
            assert await revoked(session, credential)
            async with session.get(f"http://127.0.0.1:{http_port}/.well-known/did.json") as r:
                document = json.loads(await r.text())
            assert [m["id"] for m in document["verificationMethod"]] == [
                exported.key_id,
                fresh.key_id,
            ]

            # The transcript: a CLR credential wrapping each unrevoked credit's credential.
            clr = await stub.ExportTranscript(
                pb.ExportTranscriptRequest(learner_id=FRIDA), metadata=bearer(university)
            )
            transcript = await verify(session, clr.credential_jwt)
            assert transcript["type"] == ["VerifiableCredential", "ClrCredential"]
            wrapped = transcript["credentialSubject"]["verifiableCredential"]
            assert clr.credential_count == len(wrapped) == 1
            inner = wrapped[0]["id"].removeprefix("data:application/vc+jwt,")
            assert wrapped[0]["type"] == "EnvelopedVerifiableCredential"
            inner_credential = await verify(session, inner)
            assert inner_credential["id"] == json.loads(other.credential_json)["id"]
            assert not ob3_errors(inner_credential)
            clr_file = tmp_path / "transcript.jwt"
            clr_file.write_text(clr.credential_jwt)
            assert await ledgerctl("credential", "verify", str(clr_file), "--http") == 0

            # ledgerctl credential export: the same credential as the gRPC call
            exported_file = tmp_path / "exported.jwt"
            assert await ledgerctl("credential", "export", "--learner", FRIDA, "--sequence", "3",
                                   "--query", stub.address, "--token", admin,  # type: ignore[attr-defined]
                                   "-o", str(exported_file)) == 0  # fmt: skip
            assert _unverified(exported_file.read_text().strip())[1] == json.loads(
                fresh.credential_json
            )
            assert await ledgerctl("credential", "verify", str(exported_file), "--http") == 0
            assert await ledgerctl("credential", "export", "--learner", GUS, "--sequence", "1",
                                   "--query", stub.address, "--token", university,  # type: ignore[attr-defined]
                                   "-o", str(exported_file)) == 1  # fmt: skip

            async with session.get(f"http://127.0.0.1:{http_port}/status/7") as response:
                assert response.status == 404
            async with session.get(f"http://127.0.0.1:{http_port}/status/x") as response:
                assert response.status == 400


async def _refusals(stub: pb_grpc.TranscriptQueryServiceStub, university: str, admin: str) -> None:
    cases = [
        (pb.ExportCredentialRequest(learner_id=GUS, sequence=1), university,
         grpc.StatusCode.PERMISSION_DENIED),  # no consent from Gus
        (pb.ExportCredentialRequest(learner_id=FRIDA, sequence=1), admin,
         grpc.StatusCode.FAILED_PRECONDITION),  # a consent entry, not a credit
        (pb.ExportCredentialRequest(learner_id=FRIDA, sequence=99), admin,
         grpc.StatusCode.NOT_FOUND),
        (pb.ExportCredentialRequest(learner_id=FRIDA, sequence=0), admin,
         grpc.StatusCode.INVALID_ARGUMENT),
        (pb.ExportCredentialRequest(learner_id="12ab", sequence=1), admin,
         grpc.StatusCode.INVALID_ARGUMENT),
    ]  # fmt: skip
    for request, token, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ExportCredential(request, metadata=bearer(token))
        assert refused.value.code() is code, (request, refused.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.ExportCredential(pb.ExportCredentialRequest(learner_id=FRIDA, sequence=2))
    assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.ExportTranscript(
            pb.ExportTranscriptRequest(learner_id=GUS), metadata=bearer(university)
        )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def _projected_to(database_url: str, expected: dict[str, int]) -> bool:
    return await projected(database_url, list(expected)) == expected


async def test_without_a_credential_key_exports_are_unimplemented(database_url: str) -> None:
    _, admin = await consented_university(database_url)
    settings = QuerySettings(database_url=database_url, grpc_port=0, metrics_port=0, http_port=0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    bound: asyncio.Future[int] = loop.create_future()
    http_bound: asyncio.Future[int] = loop.create_future()
    task = asyncio.create_task(run_query(settings, stop, bound, http_bound))
    try:
        port, http_port = await asyncio.wait_for(asyncio.gather(bound, http_bound), 15)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.TranscriptQueryServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as off:
                await stub.ExportCredential(
                    pb.ExportCredentialRequest(learner_id=FRIDA, sequence=2),
                    metadata=bearer(admin),
                )
            assert off.value.code() is grpc.StatusCode.UNIMPLEMENTED
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{http_port}/.well-known/did.json") as response,
        ):
            assert response.status == 404
            body = await response.json()
            assert body["error"]["reason"] == "CREDENTIALS_NOT_CONFIGURED"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


async def test_status_entries_and_issuer_keys_are_append_only(database_url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            """INSERT INTO credential_status_entries
                   (learner_id, sequence, status_list, status_index, subject_salt)
               VALUES ('599999999999', 1, 1, 7, repeat('a', 32))
               ON CONFLICT DO NOTHING"""
        )
        for statement in (
            "UPDATE credential_status_entries SET status_index = 8 "
            "WHERE learner_id = '599999999999'",
            "DELETE FROM credential_status_entries WHERE learner_id = '599999999999'",
            "TRUNCATE credential_issuer_keys",
        ):
            with pytest.raises(asyncpg.PostgresError):
                await connection.execute(statement)
        assert (
            await connection.fetchval(
                "SELECT status_index FROM credential_status_entries "
                "WHERE learner_id = '599999999999'"
            )
            == 7
        )
    finally:
        await connection.close()


def test_an_unreadable_credential_key_is_reported_by_its_setting(tmp_path: Path) -> None:
    from learnerledger.query.credentials import CredentialKeyUnreadable, load_credential_key

    bad = tmp_path / "bad.key"
    bad.write_text("not hex\n")
    with pytest.raises(CredentialKeyUnreadable, match="QUERY_CREDENTIAL_SIGNING_KEY_FILE"):
        load_credential_key(bad)
    with pytest.raises(CredentialKeyUnreadable):
        load_credential_key(tmp_path / "missing.key")
