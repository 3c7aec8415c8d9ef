"""``ledgerctl credential export|verify``: credits as verifiable credentials.

``export`` asks the query service (``ExportCredential`` or ``ExportTranscript``, with a
university's or an admin's token) and writes the secured credential, a compact JWS.

``verify`` checks one as a verifier would, trusting nothing but the issuer's DID: it resolves
the ``did:web`` document (over HTTPS; ``--http`` for a local stack without TLS; or a file),
takes the key the JWS header's ``kid`` names there, checks the EdDSA signature, the validity
period, and the revocation bit in the signed status list the credential points to. A CLR
transcript's wrapped credentials are checked the same way, each on its own.
Exit 0 verified and active, 1 refused (bad signature, unknown key, expired, revoked), 2 the
input cannot be read or the DID document or status list cannot be fetched.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENVELOPED_PREFIX = "data:application/vc+jwt,"


class Unreadable(Exception):
    """Exit 2: the input or what it points to cannot be obtained or parsed."""


class Refused(Exception):
    """Exit 1: the credential does not verify, or is expired or revoked."""


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError) as exc:
        raise Unreadable(f"cannot fetch {url}: {exc}") from exc


def _payload(token: str) -> dict[str, Any]:
    try:
        part = token.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError) as exc:
        raise Unreadable("not a compact JWS with a JSON payload") from exc
    if not isinstance(payload, dict):
        raise Unreadable("the JWS payload is not a JSON object")
    return payload


class Verifier:
    """Verifies credentials of one run, caching DID documents by DID."""

    def __init__(self, *, scheme: str, did_document: dict[str, Any] | None) -> None:
        self._scheme = scheme
        self._documents: dict[str, dict[str, Any]] = {}
        if did_document is not None:
            self._documents[str(did_document.get("id"))] = did_document
        self.lines: list[str] = []

    def _document(self, did: str) -> dict[str, Any]:
        from learnerledger.domain.credentials import InvalidCredentialInput, did_web_document_url

        if did not in self._documents:
            try:
                url = did_web_document_url(did, scheme=self._scheme)
            except InvalidCredentialInput as exc:
                raise Refused(str(exc)) from exc
            try:
                document = json.loads(_fetch(url))
            except ValueError as exc:
                raise Unreadable(f"the DID document at {url} is not JSON") from exc
            if not isinstance(document, dict) or document.get("id") != did:
                raise Refused(f"the document at {url} is not the DID document of {did}")
            self._documents[did] = document
        return self._documents[did]

    def verified(self, token: str, what: str) -> dict[str, Any]:
        """The payload of ``token`` once its signature verifies with its issuer's DID key."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        from learnerledger.domain.credentials import InvalidCredentialInput, verification_key
        from learnerledger.domain.vc_jose import CredentialRefused, header_of, verify_credential

        try:
            kid = header_of(token)["kid"]
        except CredentialRefused as exc:
            raise Refused(f"{what}: {exc}") from exc
        issuer = _payload(token).get("issuer")
        did = issuer.get("id") if isinstance(issuer, dict) else issuer
        if not isinstance(did, str) or not kid.startswith(did + "#"):
            raise Refused(f"{what}: the key {kid!r} is not a key of the issuer {did!r}")
        try:
            raw = verification_key(self._document(did), kid)
            credential = verify_credential(token, Ed25519PublicKey.from_public_bytes(raw))
        except (InvalidCredentialInput, CredentialRefused) as exc:
            raise Refused(f"{what}: {exc}") from exc
        self.lines.append(f"{what}: signature verified with {kid}")
        return credential

    def check(self, token: str, what: str, *, status: bool, now: datetime) -> dict[str, Any]:
        credential = self.verified(token, what)
        self._validity(credential, what, now)
        if status and "credentialStatus" in credential:
            self._status(credential["credentialStatus"], what)
        wrapped = credential.get("credentialSubject", {}).get("verifiableCredential", [])
        for n, inner in enumerate(wrapped if isinstance(wrapped, list) else []):
            ident = inner.get("id", "") if isinstance(inner, dict) else ""
            if isinstance(ident, str) and ident.startswith(ENVELOPED_PREFIX):
                self.check(ident.removeprefix(ENVELOPED_PREFIX), f"{what} [{n}]", status=status,
                           now=now)  # fmt: skip
        return credential

    def _validity(self, credential: dict[str, Any], what: str, now: datetime) -> None:
        def instant(name: str) -> datetime | None:
            value = credential.get(name)
            if value is None:
                return None
            try:
                return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError as exc:
                raise Refused(f"{what}: {name} {value!r} is not a date-time") from exc

        valid_from, valid_until = instant("validFrom"), instant("validUntil")
        if valid_from is not None and now < valid_from:
            raise Refused(f"{what}: not valid before {credential['validFrom']}")
        if valid_until is not None and now >= valid_until:
            raise Refused(f"{what}: expired at {credential['validUntil']}")
        if valid_until is not None:
            self.lines.append(f"{what}: valid until {credential['validUntil']}")

    def _status(self, entry: Any, what: str) -> None:
        from learnerledger.domain.credentials import (
            InvalidCredentialInput,
            decode_status_list,
            status_bit,
        )

        if not isinstance(entry, dict) or entry.get("type") != "BitstringStatusListEntry":
            raise Refused(f"{what}: unknown credentialStatus {entry!r}")
        url = entry.get("statusListCredential")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise Refused(f"{what}: statusListCredential {url!r} is not an http(s) URL")
        status_list = self.verified(_fetch(url).decode("utf-8", "replace").strip(), url)
        subject = status_list.get("credentialSubject", {})
        if status_list.get("id") != url or subject.get("statusPurpose") != entry.get(
            "statusPurpose"
        ):
            raise Refused(f"{what}: the status list at {url} is not the one named")
        try:
            bits = decode_status_list(str(subject.get("encodedList", "")))
            revoked = status_bit(bits, int(entry.get("statusListIndex", "")))
        except (InvalidCredentialInput, ValueError, OSError) as exc:
            raise Refused(f"{what}: unreadable status list: {exc}") from exc
        if revoked:
            raise Refused(f"{what}: REVOKED (bit {entry['statusListIndex']} of {url} is set)")
        self.lines.append(f"{what}: not revoked (bit {entry['statusListIndex']} of {url})")


def cmd_credential_verify(args: argparse.Namespace) -> int:
    try:
        token = (sys.stdin.read() if args.file == "-" else Path(args.file).read_text()).strip()
        document = json.loads(Path(args.did_document).read_text()) if args.did_document else None
    except (OSError, ValueError) as exc:
        print(f"ledgerctl: cannot read input: {exc}", file=sys.stderr)
        return 2
    verifier = Verifier(scheme="http" if args.http else "https", did_document=document)
    try:
        credential = verifier.check(
            token, "credential", status=not args.no_status, now=datetime.now(UTC)
        )
    except Refused as exc:
        print("\n".join(verifier.lines))
        print(f"refused: {exc}")
        return 1
    except Unreadable as exc:
        print(f"ledgerctl: {exc}", file=sys.stderr)
        return 2
    print("\n".join(verifier.lines))
    kinds = [t for t in credential.get("type", []) if t != "VerifiableCredential"]
    print(f"verified: {', '.join(kinds)} {credential.get('id')} issued by "
          f"{(credential.get('issuer') or {}).get('id', credential.get('issuer'))}")  # fmt: skip
    return 0


def cmd_credential_export(args: argparse.Namespace) -> int:
    import asyncio

    token = args.token or os.environ.get("LEDGERCTL_TOKEN")
    if not token:
        print("ledgerctl: give --token or LEDGERCTL_TOKEN (a university or admin token)",
              file=sys.stderr)  # fmt: skip
        return 2
    ca = Path(args.ca).read_bytes() if args.ca else None
    reply = asyncio.run(_export(args, token, ca))
    if reply is None:
        return 1
    if args.output:
        Path(args.output).write_text(reply.credential_jwt + "\n")
        print(f"wrote {args.output} (signed by {reply.key_id})", file=sys.stderr)
    else:
        print(reply.credential_jwt)
    if args.show:
        print(reply.credential_json, file=sys.stderr)
    return 0


async def _export(args: argparse.Namespace, token: str, ca: bytes | None) -> Any:
    """The ExportCredential (with --sequence) or ExportTranscript reply; None when refused."""
    import grpc

    from learnerledger.v1 import transcript_query_pb2 as pb
    from learnerledger.v1 import transcript_query_pb2_grpc as pb_grpc

    if ca is not None:
        channel = grpc.aio.secure_channel(args.query, grpc.ssl_channel_credentials(ca))
    else:
        channel = grpc.aio.insecure_channel(args.query)
    metadata = (("authorization", f"Bearer {token}"),)
    async with channel:
        stub = pb_grpc.TranscriptQueryServiceStub(channel)
        try:
            if args.sequence is None:
                return await stub.ExportTranscript(
                    pb.ExportTranscriptRequest(learner_id=args.learner), metadata=metadata
                )
            return await stub.ExportCredential(
                pb.ExportCredentialRequest(learner_id=args.learner, sequence=args.sequence),
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as exc:
            print(f"ledgerctl: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return None


def add_credential_commands(commands: Any) -> None:
    group = commands.add_parser("credential", help="credits as verifiable credentials")
    actions = group.add_subparsers(dest="credential_command", required=True, metavar="ACTION")

    def command(name: str, handler: Callable[..., Any], text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=text)
        sub.set_defaults(handler=handler)
        return sub

    export = command(
        "export",
        cmd_credential_export,
        "a credit (--sequence) or the whole transcript as a signed credential (compact JWS)",
    )
    export.add_argument("--learner", required=True)
    export.add_argument(
        "--sequence", type=int, help="the credit's entry; without it: the CLR transcript"
    )
    export.add_argument("--query", default="127.0.0.1:50052", help="query service address")
    export.add_argument("--token", help="university or admin token (or LEDGERCTL_TOKEN)")
    export.add_argument("--ca", help="PEM of the CA that signed the query service's certificate")
    export.add_argument("-o", "--output", help="write the JWS here (default: stdout)")
    export.add_argument("--show", action="store_true", help="print the credential's JSON too")

    verify = command(
        "verify",
        cmd_credential_verify,
        "check a credential's signature (key from the issuer's did:web), validity, revocation",
    )
    verify.add_argument("file", help="the compact JWS (a file, or - for stdin)")
    verify.add_argument(
        "--http", action="store_true", help="resolve did:web over http (a local stack)"
    )
    verify.add_argument("--did-document", help="use this DID document instead of resolving")
    verify.add_argument("--no-status", action="store_true", help="skip the revocation check")
