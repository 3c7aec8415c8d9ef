"""Bearer-token authentication for gRPC servers.

Callers send ``authorization: Bearer <token>``. :class:`BearerAuthenticator` resolves the token
to a :class:`~learnerledger.postgres.catalog.Principal` with a lookup function (normally
``catalog.authenticate`` on a pool) and caches answers briefly, keyed by the token's SHA-256
(the token itself is never stored, logged or put in an error message). A revoked token keeps
working for at most ``ttl_s`` seconds on each server; failures are cached for ``negative_ttl_s``
so a client hammering with a wrong token cannot hammer the database. A token's ``expire_time``
travels with the cached principal and is checked on every call: an expired token is refused
(UNAUTHENTICATED, ErrorInfo TOKEN_EXPIRED) at once, cache or not.

Learners present an OpenID Connect ID token instead (a JWT: three dot-separated parts, a form no
API token has). With a :class:`~learnerledger.rpc.learner_tokens.LearnerTokenVerifier` it
becomes a ``learner`` principal in the same path, so every method's authorization decision
sees learners like any other kind; without one (learner sign-in not configured) it is
UNAUTHENTICATED. ID tokens are verified on every call (signature, issuer, audience, expiry),
not cached.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc

from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import Principal, PrincipalKind
from learnerledger.postgres.errors import DATABASE_UNREACHABLE
from learnerledger.rpc.errors import Reason, RpcFailure
from learnerledger.rpc.learner_tokens import LearnerTokenVerifier

TokenLookup = Callable[[str], Awaitable[Principal | None]]


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of the first ``authorization: Bearer …`` entry, or None."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return None


def is_id_token(token: str) -> bool:
    """A JWT in compact form (header.payload.signature); API tokens never contain a dot."""
    return token.count(".") == 2


def pool_lookup(pool: asyncpg.Pool) -> TokenLookup:
    """A lookup that asks PostgreSQL (``api_tokens``, only hashes stored)."""

    async def lookup(token: str) -> Principal | None:
        async with pool.acquire() as connection:
            return await catalog.authenticate(connection, token)

    return lookup


class BearerAuthenticator:
    """Token → principal, with a small TTL cache; raises :class:`RpcFailure` on failure."""

    def __init__(
        self,
        lookup: TokenLookup,
        *,
        ttl_s: float = 30.0,
        negative_ttl_s: float = 2.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        learner_tokens: LearnerTokenVerifier | None = None,
    ) -> None:
        self._learner_tokens = learner_tokens
        self._wall_clock = wall_clock
        self._lookup = lookup
        self._ttl = ttl_s
        self._negative_ttl = negative_ttl_s
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()

    async def principal(self, metadata: Iterable[tuple[str, Any]] | None) -> Principal:
        token = bearer_token(metadata)
        if token is None:
            raise RpcFailure(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing credentials: send 'authorization: Bearer <token>' metadata",
                reason=Reason.UNAUTHENTICATED,
            )
        if is_id_token(token):
            if self._learner_tokens is None:
                raise RpcFailure(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "learner sign-in (ID tokens) is not configured on this server",
                    reason=Reason.UNAUTHENTICATED,
                )
            principal: Principal | None = await self._learner_tokens.principal(token)
        else:
            principal = await self._resolve(token)
        if principal is None:
            raise RpcFailure(
                grpc.StatusCode.UNAUTHENTICATED,
                "the bearer token is unknown or revoked",
                reason=Reason.UNAUTHENTICATED,
            )
        # Checked on every call, cached or not: a cached principal never outlives its token.
        if principal.expired(self._wall_clock()):
            assert principal.expire_time is not None
            raise RpcFailure(
                grpc.StatusCode.UNAUTHENTICATED,
                "the bearer token expired at "
                f"{principal.expire_time.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}; ask for a new one",
                reason=Reason.TOKEN_EXPIRED,
            )
        return principal

    async def require(
        self, metadata: Iterable[tuple[str, Any]] | None, kind: PrincipalKind
    ) -> Principal:
        """The caller's principal, which must be of ``kind`` (else PERMISSION_DENIED)."""
        principal = await self.principal(metadata)
        if principal.kind is not kind:
            raise RpcFailure(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this service is for {kind.value} tokens; the token belongs to a "
                f"{principal.kind.value}",
                reason=Reason.WRONG_PRINCIPAL_KIND,
                metadata={"required_kind": kind.value, "token_kind": principal.kind.value},
            )
        return principal

    async def _resolve(self, token: str) -> Principal | None:
        key = hashlib.sha256(token.encode("utf-8", errors="replace")).digest()
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(key)
            return hit[1]
        try:
            principal = await self._lookup(token)
        except DATABASE_UNREACHABLE as exc:
            raise RpcFailure(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot check the token: database unavailable ({type(exc).__name__})",
                reason=Reason.DATABASE_UNAVAILABLE,
                retry_after_s=1.0,
            ) from exc
        ttl = self._ttl if principal is not None else self._negative_ttl
        self._cache[key] = (now + ttl, principal)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return principal
