"""The local development identity provider: learners' ID tokens without DigiLocker, offline.

It is a key and a file, nothing that listens: an Ed25519 signing key in
``<state>/learner-idp/signing-key.pem`` (mode 0600) and its public JSON Web Key Set in
``<state>/learner-idp/jwks.json``, which the local services read (``LEARNER_OIDC_JWKS_FILE``,
set by ``ledgerctl serve`` on the local stack). ``ledgerctl learner token APAAR_ID`` signs an
OpenID Connect ID token with it (issuer :data:`DEV_ISSUER`, audience :data:`DEV_AUDIENCE`,
the APAAR id in the ``apaar_id`` claim). The services verify these tokens exactly as they
verify a production provider's: only the settings differ.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from learnerledger.domain.learners import is_apaar_id

DEV_ISSUER = "https://learnerledger.local/dev-idp"
DEV_AUDIENCE = "learnerledger-local"
LEARNER_ID_CLAIM = "apaar_id"
DEFAULT_LIFETIME_S = 3600


@dataclass(frozen=True, slots=True)
class DevIdentityProvider:
    folder: Path

    @property
    def key_file(self) -> Path:
        return self.folder / "signing-key.pem"

    @property
    def jwks_file(self) -> Path:
        return self.folder / "jwks.json"

    def exists(self) -> bool:
        return self.key_file.exists() and self.jwks_file.exists()

    def ensure(self) -> DevIdentityProvider:
        """Create the key (once) and (re)write its key set; idempotent."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.key_file.exists():
            key = ed25519.Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as sink:
                sink.write(pem)
        jwk = self._public_jwk()
        temporary = self.jwks_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
        temporary.replace(self.jwks_file)
        return self

    def mint(self, learner_id: str, *, lifetime_s: int = DEFAULT_LIFETIME_S) -> str:
        """A signed ID token for the learner, valid for ``lifetime_s`` seconds."""
        if not is_apaar_id(learner_id):
            raise ValueError(f"{learner_id!r} is not an APAAR id (12 digits)")
        if not 1 <= lifetime_s <= 7 * 24 * 3600:
            raise ValueError("the token lifetime must be 1 second to 7 days")
        now = int(time.time())
        claims = {
            "iss": DEV_ISSUER,
            "aud": DEV_AUDIENCE,
            "sub": f"dev-{learner_id}",
            LEARNER_ID_CLAIM: learner_id,
            "iat": now,
            "exp": now + lifetime_s,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(
            claims, self._private_key(), algorithm="EdDSA", headers={"kid": self._kid()}
        )

    def settings_env(self) -> dict[str, str]:
        """The ``LEARNER_*`` settings that make a service accept this provider's tokens."""
        return {
            "LEARNER_OIDC_ISSUER": DEV_ISSUER,
            "LEARNER_OIDC_AUDIENCE": DEV_AUDIENCE,
            "LEARNER_OIDC_JWKS_FILE": str(self.jwks_file),
            "LEARNER_ID_CLAIM": LEARNER_ID_CLAIM,
        }

    def _private_key(self) -> ed25519.Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{self.key_file} is not an Ed25519 key")
        return key

    def _public_jwk(self) -> dict[str, str]:
        jwk = OKPAlgorithm.to_jwk(self._private_key().public_key(), as_dict=True)
        return {**jwk, "kid": self._kid(), "use": "sig", "alg": "EdDSA"}

    def _kid(self) -> str:
        """The RFC 7638 thumbprint of the public key."""
        public = OKPAlgorithm.to_jwk(self._private_key().public_key(), as_dict=True)
        members = {name: public[name] for name in ("crv", "kty", "x")}
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).decode().rstrip("=")


def for_state_dir(state_dir: Path) -> DevIdentityProvider:
    return DevIdentityProvider(state_dir / "learner-idp")
