"""Learners sign in with an OpenID Connect ID token from the deployment's identity provider.

:class:`LearnerTokenVerifier` checks an ID token (a JWT) with PyJWT against the provider's JSON
Web Key Set (a URL or a file, :class:`IdentityProvider`), its issuer, the audience the services
are registered as, ``exp`` / ``iat`` (``nbf`` when present) and the claim that carries the
learner's APAAR id. Nothing of the token is parsed or checked by hand. A token that fails any
check is UNAUTHENTICATED with a message that names the failed check and never the token.

Only asymmetric algorithms are accepted (the services hold public keys only): an ``HS256``
token, ``alg: none`` or an algorithm the settings do not list is refused before any key is
tried. The key set is looked up by the token's ``kid``; an unknown ``kid`` re-reads the key
set (a rotation at the provider) at most once per ``refresh_cooldown_s``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import jwt

from learnerledger.config import CommonSettings
from learnerledger.domain.learners import is_apaar_id
from learnerledger.postgres.catalog import Principal, PrincipalKind
from learnerledger.rpc.errors import Reason, RpcFailure

#: Algorithms a verifier may be configured with: public-key signatures only.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    """Where learners' ID tokens come from and what they must say (the ``LEARNER_*`` settings)."""

    issuer: str
    audience: str
    learner_id_claim: str = "apaar_id"
    jwks_url: str | None = None
    jwks_file: Path | None = None
    algorithms: tuple[str, ...] = ("EdDSA", "RS256", "ES256")
    leeway_s: float = 30.0
    refresh_cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("an identity provider needs an issuer and an audience")
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of a JWKS URL and a JWKS file")
        unsafe = set(self.algorithms) - ASYMMETRIC_ALGORITHMS
        if unsafe or not self.algorithms:
            raise ValueError(
                f"ID token algorithms must be public-key algorithms, not {sorted(unsafe)}"
            )


class InvalidLearnerToken(Exception):
    """An ID token that does not establish a learner; the message says why (never the token)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class KeySetUnavailable(Exception):
    """The provider's key set cannot be read now (network or file)."""


@dataclass
class _KeySet:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    read_at: float = float("-inf")


class LearnerTokenVerifier:
    """ID token → learner :class:`Principal` (kind ``learner``, id = the APAAR id claim)."""

    def __init__(
        self,
        provider: IdentityProvider,
        *,
        clock: Callable[[], float] = time.monotonic,
        fetch_url: Callable[[str], bytes] | None = None,
    ) -> None:
        self.provider = provider
        self._clock = clock
        self._fetch_url = fetch_url or _fetch
        self._keys = _KeySet()
        self._lock = asyncio.Lock()

    async def principal(self, token: str) -> Principal:
        """The learner the token names; :class:`RpcFailure` UNAUTHENTICATED when it does not
        (UNAVAILABLE when the key set cannot be read)."""
        try:
            claims = await self.verify(token)
        except InvalidLearnerToken as exc:
            raise RpcFailure(
                grpc.StatusCode.UNAUTHENTICATED,
                str(exc),
                reason=Reason.TOKEN_EXPIRED if exc.expired else Reason.UNAUTHENTICATED,
            ) from None  # the library's exception may quote parts of the token
        except KeySetUnavailable as exc:
            raise RpcFailure(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot check the ID token: {exc}",
                reason=Reason.IDENTITY_PROVIDER_UNAVAILABLE,
                retry_after_s=1.0,
            ) from None
        learner_id = claims[self.provider.learner_id_claim]
        return Principal(
            PrincipalKind.LEARNER, learner_id, datetime.fromtimestamp(claims["exp"], UTC)
        )

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's verified claims; :class:`InvalidLearnerToken` when any check fails."""
        p = self.provider
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise InvalidLearnerToken("the bearer token is not a well-formed ID token") from None
        algorithm = header.get("alg")
        if algorithm not in p.algorithms:
            raise InvalidLearnerToken(
                f"the ID token's algorithm {str(algorithm)[:20]!r} is not accepted "
                f"(accepted: {', '.join(p.algorithms)})"
            )
        key = await self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=list(p.algorithms),
                audience=p.audience,
                issuer=p.issuer,
                leeway=p.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", p.learner_id_claim]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidLearnerToken(
                "the ID token has expired; sign in again", expired=True
            ) from None
        except jwt.InvalidIssuerError:
            raise InvalidLearnerToken(
                f"the ID token was not issued by the configured identity provider ({p.issuer})"
            ) from None
        except jwt.InvalidAudienceError:
            raise InvalidLearnerToken(
                f"the ID token is not meant for this service (audience must include {p.audience})"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidLearnerToken(f"the ID token lacks the {exc.claim!r} claim") from None
        except jwt.ImmatureSignatureError:
            raise InvalidLearnerToken("the ID token is not valid yet (iat or nbf ahead)") from None
        except jwt.InvalidSignatureError:
            raise InvalidLearnerToken(
                "the ID token's signature does not verify with the identity provider's key"
            ) from None
        except jwt.InvalidTokenError as exc:
            raise InvalidLearnerToken(f"the ID token is invalid ({type(exc).__name__})") from None
        learner_id = claims.get(p.learner_id_claim)
        if not isinstance(learner_id, str) or not is_apaar_id(learner_id):
            raise InvalidLearnerToken(
                f"the ID token's {p.learner_id_claim!r} claim is not an APAAR id (12 digits)"
            )
        return claims

    async def _key(self, kid: object) -> jwt.PyJWK:
        if not isinstance(kid, str) or not kid:
            raise InvalidLearnerToken("the ID token names no key (kid)")
        key = self._keys.keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.keys.get(kid)
            cooled = self._clock() - self._keys.read_at >= self.provider.refresh_cooldown_s
            if key is None and cooled:
                self._keys = _KeySet(await self._read_keys(), self._clock())
                key = self._keys.keys.get(kid)
        if key is None:
            raise InvalidLearnerToken(
                "the ID token is signed with a key the identity provider does not publish"
            )
        return key

    async def _read_keys(self) -> dict[str, jwt.PyJWK]:
        p = self.provider
        try:
            if p.jwks_file is not None:
                raw = await asyncio.to_thread(p.jwks_file.read_bytes)
            else:
                assert p.jwks_url is not None
                raw = await asyncio.to_thread(self._fetch_url, p.jwks_url)
            document = json.loads(raw)
        except (OSError, ValueError) as exc:
            raise KeySetUnavailable(
                f"the identity provider's key set could not be read ({type(exc).__name__})"
            ) from exc
        keys: dict[str, jwt.PyJWK] = {}
        for item in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(item, dict) or item.get("use", "sig") != "sig" or "kid" not in item:
                continue
            try:
                keys[str(item["kid"])] = jwt.PyJWK(item)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key this library cannot use (or a malformed one) is skipped
        return keys


def verifier_from_settings(settings: CommonSettings) -> LearnerTokenVerifier | None:
    """The verifier the ``LEARNER_OIDC_*`` settings describe, or None when sign-in is off."""
    if not settings.learner_oidc_issuer:
        return None
    algorithms = tuple(a.strip() for a in settings.learner_oidc_algorithms.split(",") if a.strip())
    return LearnerTokenVerifier(
        IdentityProvider(
            issuer=settings.learner_oidc_issuer,
            audience=settings.learner_oidc_audience,
            learner_id_claim=settings.learner_id_claim,
            jwks_url=settings.learner_oidc_jwks_url or None,
            jwks_file=Path(settings.learner_oidc_jwks_file)
            if settings.learner_oidc_jwks_file
            else None,
            algorithms=algorithms,
            leeway_s=settings.learner_oidc_leeway_s,
        )
    )


def _fetch(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read(1 << 20)
        return body
