"""Web pages on the query service's HTTP server: the public verification page and the
learner's page. Server-rendered HTML, one small vanilla script for the learner's
page, no build step, nothing fetched from the internet.

Routes (added to the HTTP API of ``http_api``):

``GET /verify``                 the verification page; ``?entry=HEX`` shows the verdict on the
                                credit entry with that ``entry_hash`` (a share link).
``POST /verify``                the same for a pasted link or hash, or an uploaded or pasted
                                proof bundle file (``ledgerctl proof export``), multipart form.
``GET /entry?entry_hash=HEX``   public: a credit entry by its hash (its canonical JSON and
                                hashes, checkable against ``/proof/inclusion``) and the
                                ledger's status claim for it now (JSON,
                                ``learnerledger/public-entry/v1``). Only credit entries.
``GET /qr.svg?entry=HEX``       the QR code (SVG) of that entry's share link.
``GET /learner``                the learner's page (the script signs in with an ID token kept
                                in sessionStorage and calls the JSON API below).
``GET /api/learner/record``     the signed-in learner's transcript (GetTranscript), credits
                                with share links, consents that stand, who read the record
                                (ListRecordAccesses). ``Authorization: Bearer <ID token>``.
``POST /api/learner/consents``  grant a reader consent (LearnerConsentService on the ledger).
``POST /api/learner/consents/revoke``  revoke it.

The verdict is :func:`learnerledger.domain.verdicts.judge` over exactly the documents the
public endpoints serve (``/entry``, ``/proof/inclusion``, ``/checkpoint``), serialized and
parsed back as any verifier would, with the checkpoint keys configured in
``QUERY_WEB_CHECKPOINT_VKEYS``. The learner's API forwards to the gRPC services with the
learner's own token, so every authorization rule of those services applies unchanged.
"""

from __future__ import annotations

import html
import io
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import grpc
import segno
import structlog
from aiohttp import web
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import Histogram

from learnerledger.domain.consents import standing_consents
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.instants import format_instant, parse_instant
from learnerledger.domain.proofs import BadInput
from learnerledger.domain.signed_note import NoteVerifier
from learnerledger.domain.transcript import CredentialStatus
from learnerledger.domain.verdicts import (
    PUBLIC_ENTRY_FORMAT,
    Evidence,
    LogEntryEvidence,
    UnreadableEvidence,
    UploadedBundle,
    Verdict,
    VerdictKind,
    judge,
    mask_learner_id,
    parse_inclusion,
    parse_public_entry,
    parse_uploaded_bundle,
)
from learnerledger.postgres import Connection, credit_log, read_model
from learnerledger.postgres.errors import DATABASE_UNREACHABLE
from learnerledger.postgres.tree_heads import NoTreeHead, head_of_size, inclusion_of_entry_hash
from learnerledger.rpc.errors import RpcFailure
from learnerledger.rpc.learner_tokens import LearnerTokenVerifier
from learnerledger.v1 import (
    learner_consent_pb2,
    learner_consent_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from learnerledger.wire.enums import PROTO_TO_LEVEL
from learnerledger.wire.instants import from_timestamp, to_timestamp

log = structlog.get_logger(__name__)

WEB_SECONDS = Histogram("query_web_seconds", "Web page and learner API latency", ["route"])
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_STATUS_NAMES = {
    transcript_query_pb2.CREDENTIAL_STATUS_ACTIVE: "active",
    transcript_query_pb2.CREDENTIAL_STATUS_REVOKED: "revoked",
    transcript_query_pb2.CREDENTIAL_STATUS_EXPIRED: "expired",
    transcript_query_pb2.CREDENTIAL_STATUS_REDEEMED: "redeemed",
}
_HTTP_OF_GRPC = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
MAX_UPLOAD_BYTES = 256 * 1024
RPC_TIMEOUT_S = 10.0


class WebProblem(Exception):
    """A JSON error answer of the learner API: ``{"error": {code, reason, message, ...}}``."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.violations = tuple(violations)

    def response(self) -> web.Response:
        error: dict[str, Any] = {
            "code": self.status,
            "reason": self.reason,
            "message": self.message,
        }
        if self.violations:
            error["field_violations"] = [{"field": f, "description": d} for f, d in self.violations]
        return web.json_response({"error": error}, status=self.status)


def _bad(field: str, description: str) -> WebProblem:
    return WebProblem(400, "INVALID_ARGUMENT", f"{field}: {description}", [(field, description)])


def _from_rpc_error(exc: grpc.aio.AioRpcError) -> WebProblem:
    reason = exc.code().name
    violations: list[tuple[str, str]] = []
    status = rpc_status.from_call(exc)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason or reason
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [(v.field, v.description) for v in bad.field_violations]
    return WebProblem(
        _HTTP_OF_GRPC.get(exc.code(), 502), reason, exc.details() or reason, violations
    )


def _from_rpc_failure(failure: RpcFailure) -> WebProblem:
    return WebProblem(
        _HTTP_OF_GRPC.get(failure.code, 500),
        str(failure.reason or failure.code.name),
        failure.message,
    )


def public_entry_hash(text: str) -> bytes | None:
    """An entry hash from what a reader pastes: 64 hex digits, or a link with ``entry=``."""
    text = text.strip()
    if _HEX64.fullmatch(text):
        return bytes.fromhex(text)
    if "entry=" in text:
        values = parse_qs(urlsplit(text).query).get("entry", [])
        if len(values) == 1 and _HEX64.fullmatch(values[0].strip()):
            return bytes.fromhex(values[0].strip())
    return None


async def public_entry_document(
    connection: Connection, entry_hash: bytes, now: datetime
) -> dict[str, Any] | None:
    """``GET /entry``'s document for the credit entry with this hash (None: no such credit)."""
    entry = await credit_log.entry_with_hash(connection, entry_hash)
    if entry is None or entry.kind is not EntryKind.CREDIT_AWARDED:
        return None  # other kinds (consents, redemptions) are not published
    state = await read_model.load_state(connection, entry.learner_id)
    credential = None if state is None else state.credentials.get(entry.sequence)
    status: dict[str, Any]
    if credential is not None:
        status = {
            "status": credential.status_at(now).value,
            "revoked_at": _instant(credential.revoked_at),
            "redeemed_at": _instant(credential.redeemed_at),
        }
    else:  # not yet in the read model: what the entry itself says
        raw = entry.payload.get("valid_until")
        valid_until = parse_instant(raw) if isinstance(raw, str) else None
        expired = valid_until is None or valid_until <= now
        status = {
            "status": (CredentialStatus.EXPIRED if expired else CredentialStatus.ACTIVE).value,
            "revoked_at": None,
            "redeemed_at": None,
        }
    status["as_of"] = format_instant(now)
    return {
        "format": PUBLIC_ENTRY_FORMAT,
        "entry": {
            "canonical_json": entry.canonical_json.decode("utf-8"),
            "prev_hash": entry.prev_hash.hex(),
            "entry_hash": entry.entry_hash.hex(),
        },
        "status": status,
    }


def _instant(value: datetime | None) -> str | None:
    return None if value is None else format_instant(value)


def inclusion_json(inclusion: Any) -> dict[str, Any]:
    """``GET /proof/inclusion``'s document for an ``InclusionAt``."""
    import base64

    return {
        "leaf_index": inclusion.leaf_index,
        "leaf_hash": base64.b64encode(inclusion.leaf_hash).decode("ascii"),
        "tree_size": inclusion.head.tree_size,
        "inclusion_proof": [base64.b64encode(h).decode("ascii") for h in inclusion.proof],
        "checkpoint": inclusion.head.note,
    }


def parse_trusted_keys(text: str) -> tuple[NoteVerifier, ...]:
    """``QUERY_WEB_CHECKPOINT_VKEYS``: note verifier keys separated by commas or spaces."""
    from learnerledger.domain.signed_note import parse_verifier_key

    return tuple(parse_verifier_key(key) for key in re.split(r"[,\s]+", text.strip()) if key)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebPages:
    """The pages and the learner's JSON API over the query service's pool and gRPC ports."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        trusted_keys: Sequence[NoteVerifier],
        learner_tokens: LearnerTokenVerifier | None,
        query_target: str,
        ledger_target: str,
        channel_credentials: grpc.ChannelCredentials | None = None,
        public_url: str | None = None,
        expiring_soon: timedelta = timedelta(days=180),
    ) -> None:
        self._pool = pool
        self._trusted = tuple(trusted_keys)
        self._learner_tokens = learner_tokens
        self._query_target = query_target
        self._ledger_target = ledger_target
        self._credentials = channel_credentials
        self._public_url = public_url.rstrip("/") if public_url else None
        self._expiring_soon = expiring_soon
        self._channels: dict[str, grpc.aio.Channel] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._route("home", self._home))
        app.router.add_get("/verify", self._route("verify", self._verify_get))
        app.router.add_post("/verify", self._route("verify_post", self._verify_post))
        app.router.add_get("/entry", self._route("entry", self._entry))
        app.router.add_get("/qr.svg", self._route("qr", self._qr))
        app.router.add_get("/learner", self._route("learner", self._learner_page))
        app.router.add_get("/static/{name}", self._route("static", self._static))
        app.router.add_get("/api/learner/record", self._route("record", self._record))
        app.router.add_post("/api/learner/consents", self._route("grant", self._grant))
        app.router.add_post("/api/learner/consents/revoke", self._route("revoke", self._revoke))
        app.on_cleanup.append(self._close_channels)

    async def _close_channels(self, app: web.Application) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    def _channel(self, target: str) -> grpc.aio.Channel:
        if target not in self._channels:
            self._channels[target] = (
                grpc.aio.insecure_channel(target)
                if self._credentials is None
                else grpc.aio.secure_channel(target, self._credentials)
            )
        return self._channels[target]

    def _route(self, name: str, handler: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except WebProblem as problem:
                response = problem.response()
            except DATABASE_UNREACHABLE as exc:
                log.warning("web_database_unreachable", route=name, error=str(exc))
                response = WebProblem(
                    503, "DATABASE_UNAVAILABLE", "the ledger's database is unreachable; retry"
                ).response()
            finally:
                WEB_SECONDS.labels(name).observe(time.perf_counter() - started)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            if response.content_type == "text/html":
                response.headers.setdefault(
                    "Content-Security-Policy",
                    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                    "frame-ancestors 'none'; form-action 'self'",
                )
            return response

        return handle

    def _base_url(self, request: web.Request) -> str:
        return self._public_url or f"{request.scheme}://{request.host}"

    def share_url(self, request: web.Request, entry_hash: str) -> str:
        return f"{self._base_url(request)}/verify?entry={entry_hash}"

    # -- public: pages and documents ----------------------------------------------------------
    async def _home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/verify")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        types = {"web.css": "text/css", "learner.js": "application/javascript"}
        if name not in types:
            raise web.HTTPNotFound()
        text = resources.files("learnerledger.query").joinpath(name).read_text("utf-8")
        return web.Response(
            text=text, content_type=types[name], headers={"Cache-Control": "max-age=300"}
        )

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        text = request.query.get("entry_hash", "")
        if not _HEX64.fullmatch(text):
            raise _bad("entry_hash", "must be 64 hexadecimal digits (a SHA-256 entry hash)")
        async with self._pool.acquire() as connection:
            document = await public_entry_document(
                connection, bytes.fromhex(text), datetime.now(UTC)
            )
        if document is None:
            raise WebProblem(404, "ENTRY_NOT_FOUND", "no credit entry has this entry_hash")
        return web.json_response(document, headers={"Cache-Control": "no-cache"})

    async def _qr(self, request: web.Request) -> web.StreamResponse:
        text = request.query.get("entry", "")
        if not _HEX64.fullmatch(text):
            raise _bad("entry", "must be 64 hexadecimal digits (a SHA-256 entry hash)")
        url = self.share_url(request, text.lower())
        buffer = io.BytesIO()
        segno.make(url, error="m").save(
            buffer, kind="svg", scale=4, border=2, xmldecl=False, title="Share link QR code"
        )
        return web.Response(
            body=buffer.getvalue(),
            content_type="image/svg+xml",
            headers={"Cache-Control": "max-age=3600"},
        )

    async def fetch_evidence(
        self, entry_hash: bytes, uploaded: UploadedBundle | None = None
    ) -> LogEntryEvidence:
        """The public documents for ``entry_hash``, exactly as ``/entry``,
        ``/proof/inclusion?entry_hash=`` and ``/checkpoint`` serve them, read back with the
        verifier's parsers (one consistent snapshot of the database)."""
        now = datetime.now(UTC)
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            entry_document = await public_entry_document(connection, entry_hash, now)
            try:
                inclusion = await inclusion_of_entry_hash(connection, entry_hash, 0)
                latest: str | None = (await head_of_size(connection, 0)).note
            except NoTreeHead:
                inclusion, latest = None, None
        entry, status = (None, None)
        if entry_document is not None:
            entry, status = parse_public_entry(json.dumps(entry_document))
        return LogEntryEvidence(
            entry=entry,
            inclusion=(
                None
                if inclusion is None
                else parse_inclusion(json.dumps(inclusion_json(inclusion)))
            ),
            latest_checkpoint=latest,
            status=status,
            uploaded=uploaded,
        )

    async def _verify_get(self, request: web.Request) -> web.StreamResponse:
        text = request.query.get("entry")
        if text is None:
            return _html(verify_page(None, None, self._trusted))
        entry_hash = public_entry_hash(text)
        evidence: Evidence = (
            UnreadableEvidence("the link does not hold a complete entry reference")
            if entry_hash is None
            else await self.fetch_evidence(entry_hash)
        )
        verdict = judge(evidence, self._trusted, datetime.now(UTC))
        return _html(verify_page(verdict, None, self._trusted))

    async def _verify_post(self, request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
            return _html(
                verify_page(
                    judge(UnreadableEvidence("the file is too large"), (), _now()),
                    None,
                    self._trusted,
                ),
                status=413,
            )
        form = await request.post()
        upload = form.get("file")
        text = ""
        source = "pasted text"
        if isinstance(upload, web.FileField) and upload.filename:
            raw = upload.file.read(MAX_UPLOAD_BYTES + 1)
            source = f"the file {upload.filename}"
            text = raw.decode("utf-8", errors="replace") if len(raw) <= MAX_UPLOAD_BYTES else ""
        if not text.strip():
            pasted = form.get("document")
            text = pasted if isinstance(pasted, str) else ""
        evidence = await self._evidence_from_text(text)
        verdict = judge(evidence, self._trusted, datetime.now(UTC))
        return _html(verify_page(verdict, source, self._trusted))

    async def _evidence_from_text(self, text: str) -> Evidence:
        if not text.strip():
            return UnreadableEvidence("nothing was pasted or uploaded")
        entry_hash = public_entry_hash(text)
        if entry_hash is not None:
            return await self.fetch_evidence(entry_hash)
        try:
            uploaded = parse_uploaded_bundle(text)
        except BadInput as exc:
            return UnreadableEvidence(f"it is neither a verification link nor a proof file ({exc})")
        return await self.fetch_evidence(uploaded.entry.entry_hash, uploaded)

    async def _learner_page(self, request: web.Request) -> web.StreamResponse:
        return _html(learner_page())

    # -- the learner's API ----------------------------------------------------------------------
    async def _signed_in(self, request: web.Request) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The learner the bearer token names, and the metadata to call the services with."""
        if self._learner_tokens is None:
            raise WebProblem(
                404, "LEARNER_SIGN_IN_OFF", "learner sign-in is not configured on this server"
            )
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise WebProblem(
                401, "UNAUTHENTICATED", "sign in: send your ID token as a bearer token"
            )
        try:
            principal = await self._learner_tokens.principal(token.strip())
        except RpcFailure as failure:
            raise _from_rpc_failure(failure) from None
        return principal.principal_id, (("authorization", f"Bearer {token.strip()}"),)

    async def _record(self, request: web.Request) -> web.StreamResponse:
        learner_id, metadata = await self._signed_in(request)
        query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(
            self._channel(self._query_target)
        )
        try:
            reply = await query.GetTranscript(
                transcript_query_pb2.GetTranscriptRequest(learner_id=learner_id),
                metadata=metadata,
                timeout=RPC_TIMEOUT_S,
            )
            transcript: transcript_query_pb2.Transcript | None = reply.transcript
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.NOT_FOUND:
                raise _from_rpc_error(exc) from None
            transcript = None  # no entries yet: an empty record
        try:
            accesses = await query.ListRecordAccesses(
                transcript_query_pb2.ListRecordAccessesRequest(learner_id=learner_id, page_size=50),
                metadata=metadata,
                timeout=RPC_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            raise _from_rpc_error(exc) from None
        now = datetime.now(UTC)
        async with self._pool.acquire() as connection:
            entries = await credit_log.learner_entries(connection, learner_id)
        hashes = {e.sequence: e.entry_hash.hex() for e in entries}
        consents = standing_consents(entries, now)
        return web.json_response(
            {
                "learner_id": learner_id,
                "learner_id_masked": mask_learner_id(learner_id),
                "as_of": format_instant(now),
                "expiring_soon_days": self._expiring_soon.days,
                "transcript": self._transcript_json(request, transcript, hashes, now),
                "consents": [
                    {
                        "university_id": c.university_id,
                        "purpose": c.purpose,
                        "granted_at": format_instant(c.granted_at),
                        "expire_time": _instant(c.expire_time),
                        "basis": c.basis,
                    }
                    for c in consents
                ],
                "accesses": [
                    {
                        "reader_kind": a.reader_kind,
                        "reader_id": a.reader_id,
                        "method": a.method,
                        "access_time": format_instant(from_timestamp(a.access_time)),
                    }
                    for a in accesses.record_accesses
                ],
                "more_accesses": bool(accesses.next_page_token),
            },
            headers={"Cache-Control": "no-store"},
        )

    def _transcript_json(
        self,
        request: web.Request,
        transcript: transcript_query_pb2.Transcript | None,
        hashes: Mapping[int, str],
        now: datetime,
    ) -> dict[str, Any]:
        if transcript is None:
            return {
                "total_credits": 0, "active_credits": 0, "expired_credits": 0,
                "revoked_credits": 0, "redeemed_credits": 0, "by_level": [], "by_issuer": [],
                "credentials": [],
            }  # fmt: skip
        credentials = []
        for c in transcript.credentials:
            valid_until = from_timestamp(c.valid_until)
            status = _STATUS_NAMES.get(c.status, "unknown")
            entry_hash = hashes.get(c.sequence)
            credentials.append(
                {
                    "sequence": c.sequence,
                    "issuer_id": c.issuer_id,
                    "course_id": c.course_id,
                    "level": PROTO_TO_LEVEL.get(c.level, "?"),
                    "credits": c.credits,
                    "completed_at": format_instant(from_timestamp(c.completed_at)),
                    "valid_until": format_instant(valid_until),
                    "status": status,
                    "expiring_soon": status == "active"
                    and valid_until - now <= self._expiring_soon,
                    "entry_hash": entry_hash,
                    "share_url": None
                    if entry_hash is None
                    else self.share_url(request, entry_hash),
                    "qr_url": None if entry_hash is None else f"/qr.svg?entry={entry_hash}",
                }
            )
        return {
            "total_credits": transcript.total_credits,
            "active_credits": transcript.active_credits,
            "expired_credits": transcript.expired_credits,
            "revoked_credits": transcript.revoked_credits,
            "redeemed_credits": transcript.redeemed_credits,
            "by_level": [
                {"level": PROTO_TO_LEVEL.get(r.level, "?"), "credits": r.credits}
                for r in transcript.by_level
            ],
            "by_issuer": [
                {"issuer_id": r.issuer_id, "credits": r.credits} for r in transcript.by_issuer
            ],
            "credentials": credentials,
        }

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _bad("body", "must be a JSON object") from None
        if not isinstance(body, dict):
            raise _bad("body", "must be a JSON object")
        return body

    @staticmethod
    def _text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str:
        value = body.get(name, "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise _bad(name, "is required" if required else "must be text")
        return value.strip()

    async def _grant(self, request: web.Request) -> web.StreamResponse:
        learner_id, metadata = await self._signed_in(request)
        body = await self._json_body(request)
        grant = learner_consent_pb2.GrantReaderConsentRequest(
            learner_id=learner_id,
            university_id=self._text(body, "university_id"),
            purpose=self._text(body, "purpose"),
            request_id=self._text(body, "request_id", required=False) or str(uuid.uuid4()),
        )
        expiry = self._text(body, "expire_time", required=False)
        if expiry:
            grant.expire_time.CopyFrom(to_timestamp(_expiry(expiry)))
        stub = learner_consent_pb2_grpc.LearnerConsentServiceStub(
            self._channel(self._ledger_target)
        )
        try:
            reply = await stub.GrantReaderConsent(grant, metadata=metadata, timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise _from_rpc_error(exc) from None
        return web.json_response({"event_id": reply.event_id}, status=202)

    async def _revoke(self, request: web.Request) -> web.StreamResponse:
        learner_id, metadata = await self._signed_in(request)
        body = await self._json_body(request)
        revoke = learner_consent_pb2.RevokeReaderConsentRequest(
            learner_id=learner_id,
            university_id=self._text(body, "university_id"),
            request_id=self._text(body, "request_id", required=False) or str(uuid.uuid4()),
        )
        stub = learner_consent_pb2_grpc.LearnerConsentServiceStub(
            self._channel(self._ledger_target)
        )
        try:
            reply = await stub.RevokeReaderConsent(revoke, metadata=metadata, timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise _from_rpc_error(exc) from None
        return web.json_response({"event_id": reply.event_id}, status=202)


def _now() -> datetime:
    return datetime.now(UTC)


def _expiry(text: str) -> datetime:
    """A consent's expiry from the form: a date (the end of that day, UTC) or an instant."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day + timedelta(days=1) - timedelta(seconds=1)
        return parse_instant(text)
    except ValueError:
        raise _bad("expire_time", "must be a date (YYYY-MM-DD) or an ISO 8601 instant") from None


# --- HTML ----------------------------------------------------------------------------------------


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8", status=status)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _layout(title: str, main: str, *, script: str | None = None, here: str = "") -> str:
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if href == here else ""}>{label}</a>'
        for href, label in (("/verify", "Verify a credit"), ("/learner", "My record"))
    )
    script_tag = f'<script src="/static/{script}" defer></script>' if script else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · Learner Ledger</title>
<link rel="stylesheet" href="/static/web.css">
{script_tag}
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><span class="brand">Learner Ledger</span>
<nav aria-label="Pages">{nav}</nav></header>
<main id="main" tabindex="-1">
{main}
</main>
<footer><p>Every verdict on this page is computed from the ledger's public documents only
(<a href="/checkpoint">latest signed checkpoint</a>, inclusion proofs, public entries).</p></footer>
</body>
</html>
"""


_TONE = {
    VerdictKind.ACTIVE: ("ok", "✓"),
    VerdictKind.EXPIRED: ("warn", "!"),
    VerdictKind.REDEEMED: ("warn", "!"),
    VerdictKind.NOT_YET_SEALED: ("warn", "…"),
    VerdictKind.REVOKED: ("bad", "✗"),
    VerdictKind.REVOKED_AFTER_REDEMPTION: ("bad", "✗"),
    VerdictKind.TAMPERED: ("bad", "✗"),
    VerdictKind.UNKNOWN_KEY: ("bad", "✗"),
    VerdictKind.NOT_FOUND: ("neutral", "?"),
    VerdictKind.NOT_A_CREDIT: ("neutral", "?"),
    VerdictKind.UNREADABLE: ("neutral", "?"),
}


def render_verdict(verdict: Verdict, source: str | None) -> str:
    tone, mark = _TONE[verdict.kind]
    facts = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in verdict.facts)
    checks = "".join(
        f'<li class="{"pass" if ok else "fail"}"><span class="mark" aria-hidden="true">'
        f"{'✓' if ok else '✗'}</span> <strong>{_e(name)}</strong>: "
        f'<span class="sr-only">{"passed" if ok else "failed"}, </span>{_e(detail)}</li>'
        for name, ok, detail in verdict.checks
    )
    sealed = ""
    if verdict.genuine:
        sealed = (
            '<p class="sealed">Included in the latest signed checkpoint of the ledger.</p>'
            if verdict.in_latest_checkpoint
            else '<p class="sealed">Included in a signed checkpoint of the ledger '
            "(not the latest one).</p>"
        )
    checked = f'<p class="source">Checked: {_e(source)}.</p>' if source else ""
    entry = (
        f'<p class="hash">Entry <code>{_e(verdict.entry_hash)}</code></p>'
        if verdict.entry_hash
        else ""
    )
    return f"""<section class="verdict {tone}" data-verdict="{_e(verdict.kind.value)}"
  aria-labelledby="verdict-title" role="status">
<h2 id="verdict-title"><span class="badge" aria-hidden="true">{mark}</span>
{_e(verdict.headline)}</h2>
<p class="explanation">{_e(verdict.explanation)}</p>
{sealed}{checked}
{f'<dl class="facts">{facts}</dl>' if facts else ""}
{entry}
{_checks_block(checks)}
</section>"""


def _checks_block(checks: str) -> str:
    if not checks:
        return ""
    return (
        "<details><summary>How this was checked</summary>"
        f'<ul class="checks">{checks}</ul></details>'
    )


def verify_page(
    verdict: Verdict | None, source: str | None, trusted: Sequence[NoteVerifier]
) -> str:
    keys = ", ".join(f"<code>{_e(v.verifier_key())}</code>" for v in trusted) or "none"
    result = render_verdict(verdict, source) if verdict is not None else ""
    main = f"""<h1>Verify a credit</h1>
<p class="lead">Check a credit a learner shared with you: whether the Learner Ledger recorded it,
exactly as shown, and what it is worth today.</p>
{result}
<section class="card" aria-labelledby="check-title">
<h2 id="check-title">{"Check another" if verdict else "Check a credit"}</h2>
<form method="post" action="/verify" enctype="multipart/form-data" class="stack">
<label for="document">Paste the share link, or the contents of a proof file</label>
<textarea id="document" name="document" rows="3" autocomplete="off" spellcheck="false"
  placeholder="https://…/verify?entry=…"></textarea>
<label for="file">…or upload a proof file (<code>.json</code> from
<code>ledgerctl proof export</code>)</label>
<input id="file" name="file" type="file" accept=".json,application/json">
<button type="submit">Check</button>
</form>
</section>
<p class="keys">This page trusts the ledger's checkpoint key {keys}. Compare it with the key
your institution obtained from the ledger's operator.</p>"""
    return _layout("Verify a credit", main, here="/verify")


def learner_page() -> str:
    main = """<h1>My record</h1>
<section id="signin" class="card" aria-labelledby="signin-title">
<h2 id="signin-title">Sign in</h2>
<form id="signin-form" class="stack">
<label for="token">Your sign-in token (from DigiLocker, or
<code>ledgerctl learner token</code> locally)</label>
<textarea id="token" name="token" rows="3" required autocomplete="off"
  spellcheck="false"></textarea>
<button type="submit">Sign in</button>
</form>
<p class="hint">The token stays in this browser tab only (session storage) and is sent to this
server alone.</p>
</section>
<p id="message" class="message" role="alert" hidden></p>
<div id="record" hidden>
<div class="row"><p>Signed in as learner <strong id="who"></strong>.</p>
<button type="button" id="signout" class="secondary">Sign out</button></div>
<section class="card" aria-labelledby="totals-title">
<h2 id="totals-title">Transcript</h2>
<dl class="totals" id="totals"></dl>
<div class="split">
<table id="by-level"><caption>Active credits by level</caption>
<thead><tr><th scope="col">NCrF level</th><th scope="col">Credits</th></tr></thead>
<tbody></tbody></table>
<table id="by-issuer"><caption>Active credits by issuer</caption>
<thead><tr><th scope="col">Issuer</th><th scope="col">Credits</th></tr></thead>
<tbody></tbody></table>
</div>
</section>
<section class="card" aria-labelledby="credits-title">
<h2 id="credits-title">My credits</h2>
<ul id="credits" class="credits"></ul>
</section>
<section class="card" aria-labelledby="consents-title">
<h2 id="consents-title">Who may read my record</h2>
<ul id="consents" class="plain"></ul>
<form id="grant-form" class="stack">
<h3>Give a university or employer access</h3>
<label for="reader">Reader id</label>
<input id="reader" name="university_id" required autocomplete="off"
  placeholder="e.g. demo-university">
<label for="purpose">Purpose</label>
<input id="purpose" name="purpose" required maxlength="500" placeholder="e.g. admission 2027">
<label for="expiry">Until (optional; leave empty to keep it until you revoke it)</label>
<input id="expiry" name="expire_time" type="date">
<button type="submit">Give access</button>
</form>
</section>
<section class="card" aria-labelledby="reads-title">
<h2 id="reads-title">Who read my record</h2>
<table id="accesses"><caption class="sr-only">Reads of my record, newest first</caption>
<thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th></tr></thead>
<tbody></tbody></table>
<p id="no-accesses" hidden>Nobody has read your record yet.</p>
</section>
</div>"""
    return _layout("My record", main, script="learner.js", here="/learner")
