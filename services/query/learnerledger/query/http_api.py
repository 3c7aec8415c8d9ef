"""The verifiable log over plain HTTP, next to the gRPC API: public, read-only, no token.

``GET /checkpoint``                 the latest signed tree head (``?tree_size=N``: that one), a
                                    C2SP tlog-checkpoint note, ``text/plain; charset=utf-8``.
``GET /proof/inclusion``            ``?leaf_index=I`` or ``?entry_hash=HEX`` (the entry's
                                    ``entry_hash``, as Certificate Transparency's
                                    get-proof-by-hash), optional ``&tree_size=N`` (default: the
                                    latest head): the leaf, the signed head and the proof (JSON).
``GET /proof/consistency?from=M&to=N``  the consistency proof between two tree sizes, exactly
                                    the ``learnerledger/consistency-proof/v1`` file that
                                    ``ledgerctl proof consistency`` and ``witness`` read.
``GET /.well-known/did.json``       the credential issuer's DID document (did:web): every key
                                    that ever signed a credential.
``GET /status/N``                   status list N: a W3C Bitstring Status List credential
                                    (revocation), computed from the read model now and signed
                                    (``application/vc+jwt``).

The web pages (``/verify``, ``/learner``), the public entry lookup ``GET /entry?entry_hash=``
and the learner's JSON API are in ``learnerledger.query.web``.

Everything served is either signed (the notes) or checkable against what is signed (the
proofs), so no token is needed; nothing here names a learner (an entry is found by its hash
or leaf index only, so the API cannot be used to learn who has entries). Errors are JSON
``{"error": {"code", "reason", "message", "field_violations"?}}``: 400 for a malformed or
missing parameter, 404 when the head, leaf or tree size does not exist (yet), 503 (with
``Retry-After``) while PostgreSQL is unreachable.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import Histogram

from learnerledger.domain.merkle import ProofError
from learnerledger.domain.proofs import CONSISTENCY_FORMAT
from learnerledger.postgres.errors import DATABASE_UNREACHABLE
from learnerledger.postgres.merkle_tree import MissingNode, consistency_proof_between
from learnerledger.postgres.tree_heads import (
    NoTreeHead,
    head_of_size,
    inclusion_of_entry_hash,
    inclusion_of_leaf,
)
from learnerledger.query.credentials import CredentialIssuerSlot, CredentialIssuing
from learnerledger.query.web import WebPages

log = structlog.get_logger(__name__)

HTTP_SECONDS = Histogram("query_http_seconds", "Verifiable-log HTTP GET latency", ["route"])
MAX_SIZE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class HttpProblem(Exception):
    """An answer other than 200: status, machine-readable reason, message, bad fields."""

    status: int
    reason: str
    message: str
    violations: tuple[tuple[str, str], ...] = ()

    def response(self) -> web.Response:
        error: dict[str, Any] = {
            "code": self.status,
            "reason": self.reason,
            "message": self.message,
        }
        if self.violations:
            error["field_violations"] = [
                {"field": field, "description": description}
                for field, description in self.violations
            ]
        headers = {"Retry-After": "1"} if self.status == 503 else None
        return web.json_response({"error": error}, status=self.status, headers=headers)


def _bad(field: str, description: str) -> HttpProblem:
    return HttpProblem(400, "INVALID_ARGUMENT", f"{field}: {description}", ((field, description),))


def _not_found(reason: str, message: str) -> HttpProblem:
    return HttpProblem(404, reason, message)


def _size_param(
    query: Mapping[str, str], name: str, *, minimum: int, required: bool = False
) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        if required:
            raise _bad(name, "is required")
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise _bad(name, f"must be a whole number of at least {minimum}, got {text[:40]!r}")
    value = int(text)
    if value < minimum or value > MAX_SIZE:
        raise _bad(name, f"must be a whole number of at least {minimum}, got {value}")
    return value


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


Handler = Callable[[web.Request, asyncpg.Pool], Awaitable[web.StreamResponse]]


class LogHttpApi:
    """The routes above over the query service's pool (role ``ll_query``: SELECT only)."""

    def __init__(self, pool: asyncpg.Pool, credentials: CredentialIssuerSlot | None = None) -> None:
        self._pool = pool
        self._credentials = credentials or CredentialIssuerSlot()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/checkpoint", self._route("checkpoint", _checkpoint))
        app.router.add_get("/proof/inclusion", self._route("inclusion", _inclusion))
        app.router.add_get("/proof/consistency", self._route("consistency", _consistency))
        app.router.add_get("/.well-known/did.json", self._route("did", self._did_document))
        app.router.add_get("/status/{list}", self._route("status_list", self._status_list))
        return app

    def _issuing(self) -> CredentialIssuing:
        issuing = self._credentials.issuing
        if issuing is None:
            raise _not_found(
                "CREDENTIALS_NOT_CONFIGURED",
                "this server issues no credentials (QUERY_CREDENTIAL_SIGNING_KEY_FILE is unset)",
            )
        return issuing

    async def _did_document(self, request: web.Request, pool: asyncpg.Pool) -> web.StreamResponse:
        document = await self._issuing().did_document()
        return web.Response(
            text=json.dumps(document, indent=2) + "\n",
            content_type="application/did+json",
            headers={"Cache-Control": "no-cache"},
        )

    async def _status_list(self, request: web.Request, pool: asyncpg.Pool) -> web.StreamResponse:
        issuing = self._issuing()
        text = request.match_info["list"]
        if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < 1:
            raise _bad("list", f"must be a status list number (1 or more), got {text[:40]!r}")
        jws = await issuing.status_list(int(text))
        if jws is None:
            raise _not_found("STATUS_LIST_NOT_FOUND", f"there is no status list {int(text)}")
        return web.Response(
            text=jws, content_type="application/vc+jwt", headers={"Cache-Control": "no-cache"}
        )

    def _route(
        self, name: str, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                return await handler(request, self._pool)
            except HttpProblem as problem:
                return problem.response()
            except DATABASE_UNREACHABLE as exc:
                log.warning("http_database_unreachable", route=name, error=str(exc))
                return HttpProblem(
                    503, "DATABASE_UNAVAILABLE", "the log's database is unreachable; retry"
                ).response()
            finally:
                HTTP_SECONDS.labels(name).observe(time.perf_counter() - started)

        return handle


async def _checkpoint(request: web.Request, pool: asyncpg.Pool) -> web.StreamResponse:
    tree_size = _size_param(request.query, "tree_size", minimum=1) or 0
    async with pool.acquire() as connection:
        try:
            head = await head_of_size(connection, tree_size)
        except NoTreeHead as exc:
            raise _not_found("TREE_HEAD_NOT_FOUND", str(exc)) from exc
    return web.Response(
        text=head.note,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-cache"} if tree_size == 0 else None,
    )


async def _inclusion(request: web.Request, pool: asyncpg.Pool) -> web.StreamResponse:
    query = request.query
    leaf_index = _size_param(query, "leaf_index", minimum=0)
    hash_text = query.get("entry_hash")
    if (leaf_index is None) == (hash_text is None):
        raise _bad("leaf_index", "give exactly one of leaf_index and entry_hash")
    entry_hash: bytes | None = None
    if hash_text is not None:
        try:
            entry_hash = bytes.fromhex(hash_text)
        except ValueError:
            entry_hash = None
        if entry_hash is None or len(entry_hash) != 32:
            raise _bad("entry_hash", "must be 64 hexadecimal digits (a SHA-256 entry hash)")
    tree_size = _size_param(query, "tree_size", minimum=1) or 0
    async with pool.acquire() as connection:
        try:
            if entry_hash is not None:
                inclusion = await inclusion_of_entry_hash(connection, entry_hash, tree_size)
            else:
                assert leaf_index is not None
                inclusion = await inclusion_of_leaf(connection, leaf_index, tree_size)
        except NoTreeHead as exc:
            raise _not_found("TREE_HEAD_NOT_FOUND", str(exc)) from exc
    if inclusion is None and entry_hash is not None:
        raise _not_found(
            "LEAF_NOT_FOUND",
            "no entry with this entry_hash is in the tree of the signed head asked for "
            "(unknown, or not yet under a signed tree head: the checkpointer adds it on its "
            "next tick)",
        )
    if inclusion is None:
        raise _not_found(
            "LEAF_NOT_FOUND",
            f"leaf {leaf_index} is not in the tree of the signed head asked for",
        )
    return web.json_response(
        {
            "leaf_index": inclusion.leaf_index,
            "leaf_hash": _b64(inclusion.leaf_hash),
            "tree_size": inclusion.head.tree_size,
            "inclusion_proof": [_b64(h) for h in inclusion.proof],
            "checkpoint": inclusion.head.note,
        }
    )


async def _consistency(request: web.Request, pool: asyncpg.Pool) -> web.StreamResponse:
    old_size = _size_param(request.query, "from", minimum=1, required=True)
    new_size = _size_param(request.query, "to", minimum=1, required=True)
    assert old_size is not None
    assert new_size is not None
    if new_size < old_size:
        raise _bad("to", f"must be at least from ({old_size}), got {new_size}")
    async with pool.acquire() as connection:
        try:
            proof = await consistency_proof_between(connection, old_size, new_size)
        except (MissingNode, ProofError) as exc:
            raise _not_found(
                "TREE_TOO_SMALL", f"the tree has not grown to {new_size} entries"
            ) from exc
    document = {
        "format": CONSISTENCY_FORMAT,
        "old_size": old_size,
        "new_size": new_size,
        "proof": [_b64(h) for h in proof],
    }
    return web.Response(text=json.dumps(document, indent=2) + "\n", content_type="application/json")


def _ssl_context(cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext | None:
    if cert_file is None or key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@dataclass
class RunningHttp:
    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_http(
    pool: asyncpg.Pool,
    *,
    bind: str,
    port: int,
    tls_cert_file: Path | None = None,
    tls_key_file: Path | None = None,
    credentials: CredentialIssuerSlot | None = None,
    pages: WebPages | None = None,
) -> RunningHttp:
    """Serve the routes on ``bind:port`` (0: any free port); HTTPS with the gRPC API's
    certificate when TLS files are configured. The credential routes answer once
    ``credentials`` holds an issuer; with ``pages``, the web pages too (``web``)."""
    app = LogHttpApi(pool, credentials).app()
    if pages is not None:
        pages.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, bind, port, ssl_context=_ssl_context(tls_cert_file, tls_key_file))
    await site.start()
    bound = int(runner.addresses[0][1])  # the port bound, also when 0 was asked for
    return RunningHttp(runner, bound)
