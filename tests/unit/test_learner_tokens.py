"""Learner ID token verification (learnerledger.rpc.learner_tokens), with keys made here."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from learnerledger.config import CommonSettings
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.rpc.auth import BearerAuthenticator
from learnerledger.rpc.errors import RpcFailure
from learnerledger.rpc.learner_tokens import (
    IdentityProvider,
    LearnerTokenVerifier,
    verifier_from_settings,
)

ISSUER = "https://idp.test/realms/apaar"
AUDIENCE = "learnerledger-test"
LEARNER = "123456789012"


class Provider:
    """A throwaway identity provider: its keys, its JWKS file, and tokens it signs."""

    def __init__(self, folder: Path) -> None:
        self.ed_key = ed25519.Ed25519PrivateKey.generate()
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks_file = folder / "jwks.json"
        self.publish(("ed-1", self.ed_key), ("rsa-1", self.rsa_key))

    def publish(self, *keys: tuple[str, Any]) -> None:
        document = {"keys": [_jwk(kid, key) for kid, key in keys]}
        self.jwks_file.write_text(json.dumps(document))

    def token(
        self,
        *,
        key: Any = None,
        kid: str = "ed-1",
        algorithm: str = "EdDSA",
        lifetime_s: float = 300,
        **overrides: Any,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "digilocker-user-1",
            "apaar_id": LEARNER,
            "iat": now,
            "exp": now + int(lifetime_s),
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, key or self.ed_key, algorithm=algorithm, headers={"kid": kid})


def _jwk(kid: str, private_key: Any) -> dict[str, Any]:
    public = private_key.public_key()
    algorithm = OKPAlgorithm if isinstance(public, ed25519.Ed25519PublicKey) else RSAAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(public, as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


@pytest.fixture
def provider(tmp_path: Path) -> Provider:
    return Provider(tmp_path)


def _verifier(provider: Provider, **kwargs: Any) -> LearnerTokenVerifier:
    return LearnerTokenVerifier(
        IdentityProvider(issuer=ISSUER, audience=AUDIENCE, jwks_file=provider.jwks_file),
        **kwargs,
    )


async def _refusal(verifier: LearnerTokenVerifier, token: str) -> RpcFailure:
    with pytest.raises(RpcFailure) as refused:
        await verifier.principal(token)
    failure = refused.value
    assert failure.code is grpc.StatusCode.UNAUTHENTICATED
    assert token not in failure.message
    assert all(part not in failure.message for part in token.split(".") if len(part) > 8)
    return failure


async def test_a_good_token_signed_with_ed25519_or_rsa_is_the_learner(provider: Provider) -> None:
    verifier = _verifier(provider)
    for token in (
        provider.token(),
        provider.token(key=provider.rsa_key, kid="rsa-1", algorithm="RS256"),
    ):
        principal = await verifier.principal(token)
        assert principal.kind is PrincipalKind.LEARNER
        assert principal.principal_id == LEARNER
        assert principal.expire_time is not None
        assert abs(principal.expire_time.timestamp() - (time.time() + 300)) < 5


async def test_the_learner_id_comes_from_the_configured_claim(provider: Provider) -> None:
    verifier = LearnerTokenVerifier(
        IdentityProvider(
            issuer=ISSUER, audience=AUDIENCE, jwks_file=provider.jwks_file, learner_id_claim="sub"
        )
    )
    principal = await verifier.principal(provider.token(sub="987654321098"))
    assert principal.principal_id == "987654321098"
    # the default claim is not consulted when another is configured
    failure = await _refusal(verifier, provider.token())
    assert failure.message == "the ID token's 'sub' claim is not an APAAR id (12 digits)"


@pytest.mark.parametrize(
    ("token_args", "message"),
    [
        (
            {"lifetime_s": -120},
            "the ID token has expired; sign in again",
        ),
        (
            {"iss": "https://evil.test/"},
            f"the ID token was not issued by the configured identity provider ({ISSUER})",
        ),
        (
            {"aud": "another-service"},
            f"the ID token is not meant for this service (audience must include {AUDIENCE})",
        ),
        ({"apaar_id": None}, "the ID token lacks the 'apaar_id' claim"),
        ({"exp": None}, "the ID token lacks the 'exp' claim"),
        ({"apaar_id": "12345"}, "the ID token's 'apaar_id' claim is not an APAAR id (12 digits)"),
        ({"iat": int(time.time()) + 3600}, "the ID token is not valid yet (iat or nbf ahead)"),
        (
            {"kid": "nobody"},
            "the ID token is signed with a key the identity provider does not publish",
        ),
    ],
)
async def test_bad_tokens_are_unauthenticated_with_a_clear_message(
    provider: Provider, token_args: dict[str, Any], message: str
) -> None:
    failure = await _refusal(_verifier(provider), provider.token(**token_args))
    assert failure.message == message
    expected_reason = "TOKEN_EXPIRED" if "expired" in message else "UNAUTHENTICATED"
    assert failure.reason == expected_reason


async def test_a_token_signed_by_another_key_or_altered_is_refused(provider: Provider) -> None:
    verifier = _verifier(provider)
    forged = provider.token(key=ed25519.Ed25519PrivateKey.generate())  # same kid, other key
    failure = await _refusal(verifier, forged)
    assert failure.message == (
        "the ID token's signature does not verify with the identity provider's key"
    )
    header, _payload, signature = provider.token().split(".")
    other_payload = provider.token(apaar_id="999999999999").split(".")[1]
    failure = await _refusal(verifier, f"{header}.{other_payload}.{signature}")
    assert "signature does not verify" in failure.message


async def test_symmetric_and_unsigned_tokens_are_refused_before_any_key(provider: Provider) -> None:
    verifier = _verifier(provider)
    # HS256 keyed with the public key's bytes: the classic algorithm-confusion attack
    public_jwk = json.loads(provider.jwks_file.read_text())["keys"][0]
    hs = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "apaar_id": LEARNER, "iat": 1, "exp": 2**40},
        public_jwk["x"],
        algorithm="HS256",
        headers={"kid": "ed-1"},
    )
    assert (await _refusal(verifier, hs)).message.startswith(
        "the ID token's algorithm 'HS256' is not accepted"
    )
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "apaar_id": LEARNER}, None, algorithm="none"
    )
    assert "algorithm 'none' is not accepted" in (await _refusal(verifier, unsigned)).message
    assert (await _refusal(verifier, "not.a.jwt")).message == (
        "the bearer token is not a well-formed ID token"
    )


async def test_a_rotated_key_is_picked_up_from_the_key_set(provider: Provider) -> None:
    now = [0.0]
    verifier = _verifier(provider, clock=lambda: now[0])
    assert (await verifier.principal(provider.token())).principal_id == LEARNER
    new_key = ed25519.Ed25519PrivateKey.generate()
    provider.publish(("ed-2", new_key))
    token = provider.token(key=new_key, kid="ed-2")
    # within the cooldown an unknown kid does not re-read the set (no hammering the provider)
    now[0] = 1.0
    await _refusal(verifier, token)
    now[0] = 60.0
    assert (await verifier.principal(token)).principal_id == LEARNER


async def test_an_unreadable_key_set_is_unavailable_not_unauthenticated(tmp_path: Path) -> None:
    verifier = LearnerTokenVerifier(
        IdentityProvider(issuer=ISSUER, audience=AUDIENCE, jwks_file=tmp_path / "missing.json")
    )
    with pytest.raises(RpcFailure) as refused:
        await verifier.principal(Provider(tmp_path / "..").token())
    assert refused.value.code is grpc.StatusCode.UNAVAILABLE


async def test_a_key_set_from_a_url(provider: Provider) -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return provider.jwks_file.read_bytes()

    verifier = LearnerTokenVerifier(
        IdentityProvider(issuer=ISSUER, audience=AUDIENCE, jwks_url="https://idp.test/jwks"),
        fetch_url=fetch,
    )
    assert (await verifier.principal(provider.token())).principal_id == LEARNER
    assert (await verifier.principal(provider.token())).principal_id == LEARNER
    assert fetched == ["https://idp.test/jwks"]  # read once, then from memory


async def test_the_authenticator_routes_id_tokens_to_the_verifier(provider: Provider) -> None:
    async def no_api_tokens(token: str) -> None:
        raise AssertionError("an ID token must not be looked up as an API token")

    with_sign_in = BearerAuthenticator(no_api_tokens, learner_tokens=_verifier(provider))
    metadata = (("authorization", f"Bearer {provider.token()}"),)
    principal = await with_sign_in.principal(metadata)
    assert (principal.kind, principal.principal_id) == (PrincipalKind.LEARNER, LEARNER)
    with pytest.raises(RpcFailure) as wrong_kind:
        await with_sign_in.require(metadata, PrincipalKind.ADMIN)
    assert wrong_kind.value.code is grpc.StatusCode.PERMISSION_DENIED

    without = BearerAuthenticator(no_api_tokens)
    with pytest.raises(RpcFailure) as off:
        await without.principal(metadata)
    assert off.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert off.value.message == "learner sign-in (ID tokens) is not configured on this server"


def test_settings_describe_one_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert verifier_from_settings(CommonSettings()) is None
    monkeypatch.setenv("LEARNER_OIDC_ISSUER", ISSUER)
    with pytest.raises(ValidationError, match="LEARNER_OIDC_AUDIENCE is required"):
        CommonSettings()
    monkeypatch.setenv("LEARNER_OIDC_AUDIENCE", AUDIENCE)
    with pytest.raises(ValidationError, match="exactly one of LEARNER_OIDC_JWKS_URL"):
        CommonSettings()
    monkeypatch.setenv("LEARNER_OIDC_JWKS_URL", "http://idp.example/jwks")
    with pytest.raises(ValidationError, match="must be https://"):
        CommonSettings()
    monkeypatch.delenv("LEARNER_OIDC_JWKS_URL")
    monkeypatch.setenv("LEARNER_OIDC_JWKS_FILE", str(tmp_path / "jwks.json"))
    monkeypatch.setenv("LEARNER_ID_CLAIM", "sub")
    verifier = verifier_from_settings(CommonSettings())
    assert verifier is not None
    assert verifier.provider.learner_id_claim == "sub"
    assert verifier.provider.jwks_file == tmp_path / "jwks.json"
    monkeypatch.setenv("LEARNER_OIDC_ALGORITHMS", "EdDSA,HS256")
    with pytest.raises(ValueError, match="public-key algorithms"):
        verifier_from_settings(CommonSettings())
