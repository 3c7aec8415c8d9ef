"""Securing credentials with JOSE (W3C VC-JOSE-COSE 1.0): compact JWS, EdDSA (Ed25519).

The JWS payload is the credential itself (JSON, not JWT claims); the protected header names the
algorithm, the media type ``vc+jwt``, the content type ``vc`` and the signing key's DID URL
(``kid``), by which a verifier finds the key in the issuer's DID document. Signed and verified
with PyJWT (no JOSE parsing by hand); any other JOSE library verifies the same tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "EdDSA"
MEDIA_TYPE = "vc+jwt"
CONTENT_TYPE = "vc"


class CredentialRefused(Exception):
    """A secured credential did not verify (bad signature, unknown key, malformed)."""


def sign_credential(credential: Mapping[str, Any], key: Ed25519PrivateKey, kid: str) -> str:
    """The compact JWS of ``credential`` signed with ``key`` under ``kid``."""
    payload = json.dumps(credential, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return jwt.api_jws.encode(
        payload,
        key,
        algorithm=ALGORITHM,
        headers={"kid": kid, "typ": MEDIA_TYPE, "cty": CONTENT_TYPE},
    )


def header_of(token: str) -> dict[str, Any]:
    """The protected header, unverified (to find ``kid``); refuses anything but EdDSA vc+jwt."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise CredentialRefused(f"not a compact JWS: {exc}") from exc
    if header.get("alg") != ALGORITHM:
        raise CredentialRefused(f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
    if header.get("typ") != MEDIA_TYPE:
        raise CredentialRefused(f"typ {header.get('typ')!r} is not {MEDIA_TYPE}")
    if not isinstance(header.get("kid"), str):
        raise CredentialRefused("the header names no kid")
    return dict(header)


def verify_credential(token: str, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The credential if ``token`` carries a valid signature by ``public_key``."""
    header_of(token)
    try:
        payload = jwt.api_jws.decode(token, public_key, algorithms=[ALGORITHM])
    except jwt.PyJWTError as exc:
        raise CredentialRefused(f"signature does not verify: {exc}") from exc
    try:
        credential = json.loads(payload)
    except ValueError as exc:
        raise CredentialRefused("the payload is not JSON") from exc
    if not isinstance(credential, dict):
        raise CredentialRefused("the payload is not a JSON object")
    return credential
