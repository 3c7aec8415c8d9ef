"""The query service as a credential issuer: OB 3.0 credentials for single credits,
a CLR 2.0 transcript, the DID document and the revocation status lists, all secured with the
credential key (VC-JOSE, EdDSA), never the checkpoint key.

The JSON is built by :mod:`learnerledger.domain.credentials` and signed by
:mod:`learnerledger.domain.vc_jose`; this module only reads what they need from PostgreSQL.
Status lists are computed from the read model when they are served, so an issuer's revocation
shows as soon as the projector has applied it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client import Counter, Histogram

from learnerledger.domain import credentials as vc
from learnerledger.domain.vc_jose import sign_credential
from learnerledger.postgres import credentials as store

log = structlog.get_logger(__name__)

EXPORTED = Counter("query_credentials_exported_total", "Credentials exported", ["kind"])
STATUS_LIST_SECONDS = Histogram(
    "query_status_list_seconds", "Time to compute and sign one status list credential"
)


class CredentialKeyUnreadable(RuntimeError):
    """QUERY_CREDENTIAL_SIGNING_KEY_FILE cannot be read as an Ed25519 seed."""


def load_credential_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a file holding its 32-byte seed as hex (the format of
    ``ledgerctl keys generate``)."""
    try:
        seed = bytes.fromhex(path.read_text().strip())
        return Ed25519PrivateKey.from_private_bytes(seed)
    except (OSError, ValueError) as exc:
        raise CredentialKeyUnreadable(
            f"setting QUERY_CREDENTIAL_SIGNING_KEY_FILE: {path} is not a readable Ed25519 "
            f"seed (64 hexadecimal digits, as `ledgerctl keys generate` writes): {exc}"
        ) from exc


@dataclass(frozen=True, slots=True)
class SignedCredential:
    jws: str
    credential: dict[str, Any]
    key_id: str


class CredentialIssuing:
    """Exports and status lists for one issuer identity and signing key."""

    def __init__(
        self, pool: asyncpg.Pool, key: Ed25519PrivateKey, issuer: vc.CredentialIssuer
    ) -> None:
        self._pool = pool
        self._key = key
        self.issuer = issuer
        self.public_key = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = vc.key_id(issuer.did, self.public_key)

    async def record_key(self) -> None:
        """Add the signing key to the keys the DID document lists (kept across rotations)."""
        async with self._pool.acquire() as connection:
            await store.record_issuer_key(
                connection, vc.jwk_thumbprint(self.public_key), self.public_key
            )
        log.info("credential_key_in_use", kid=self.key_id)

    def _sign(self, credential: dict[str, Any]) -> SignedCredential:
        return SignedCredential(sign_credential(credential, self._key, self.key_id), credential,
                                self.key_id)  # fmt: skip

    async def export_credential(self, learner_id: str, sequence: int) -> SignedCredential:
        """One credit as a signed OpenBadgeCredential (raises the store's typed errors)."""
        async with self._pool.acquire() as connection, connection.transaction():
            facts = await store.credit_facts(connection, learner_id, sequence)
            status = await store.status_entry(connection, learner_id, sequence)
        EXPORTED.labels("open_badge").inc()
        return self._sign(vc.open_badge_credential(self.issuer, facts, status))

    async def export_transcript(self, learner_id: str) -> tuple[SignedCredential, int]:
        """The learner's unrevoked credits as a signed ClrCredential, and how many it holds."""
        signed: list[str] = []
        async with self._pool.acquire() as connection, connection.transaction():
            sequences = await store.credited_sequences(connection, learner_id)
            salt = None
            for sequence in sequences:
                facts = await store.credit_facts(connection, learner_id, sequence)
                status = await store.status_entry(connection, learner_id, sequence)
                salt = salt or status.subject_salt
                signed.append(self._sign(vc.open_badge_credential(self.issuer, facts, status)).jws)
        now = datetime.now(UTC)
        transcript = vc.clr_credential(
            self.issuer,
            learner_id,
            salt or uuid.uuid4().hex,
            signed,
            issued_at=now,
            transcript_id=f"urn:uuid:{uuid.uuid4()}",
        )
        EXPORTED.labels("clr").inc()
        return self._sign(transcript), len(signed)

    async def did_document(self) -> dict[str, Any]:
        async with self._pool.acquire() as connection:
            keys = list(await store.issuer_keys(connection))
        if self.public_key not in keys:  # not yet recorded (or recording failed): still list it
            keys.append(self.public_key)
        return vc.did_document(self.issuer.did, keys)

    async def status_list(self, status_list: int) -> str | None:
        """The signed status list credential of list ``status_list`` (None: no such list)."""
        started = time.perf_counter()
        async with self._pool.acquire() as connection:
            if not await store.status_list_exists(connection, status_list):
                return None
            revoked = await store.revoked_indices(connection, status_list)
        credential = vc.status_list_credential(
            self.issuer, status_list, revoked, issued_at=datetime.now(UTC)
        )
        jws = self._sign(credential).jws
        STATUS_LIST_SECONDS.observe(time.perf_counter() - started)
        return jws


class CredentialIssuerSlot:
    """Where the HTTP API and the gRPC servicer find the issuer: filled once the HTTP port is
    bound (the issuer's DID names the public URL), or never when no key is configured."""

    def __init__(self) -> None:
        self.issuing: CredentialIssuing | None = None
