"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 signatures, pure.

A signed note is a text that ends in a newline, a blank line, then one or more signature lines
``— <key name> <base64(key id (4 bytes, big-endian) || signature)>``, each ending in a newline.
The text is what is signed; it is separated from the signatures by the *last* blank line.

A key is named by its name and a 32-bit key id. For Ed25519 (signature type ``0x01``) the id is
the first four bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``. A verifier key ("vkey")
is the text ``<name>+<hex key id>+<base64(0x01 || public key)>``: this is how a verifier is
given the key it trusts, out of band (``parse_verifier_key``).

Opening a note (``open_note``) follows the spec: signatures by other keys are ignored; a
signature by the trusted key that does not verify rejects the note; a note with no verified
signature by the trusted key is rejected too. Nothing here trusts a key carried in the note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01  # the signature type byte of Ed25519 note signatures
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100  # the spec requires accepting at least 16


class NoteError(ValueError):
    """A note that cannot be accepted (the subclass says why)."""


class MalformedNote(NoteError):
    """The bytes are not a signed note (or the key text is not a verifier key)."""


class UnverifiedNote(NoteError):
    """The note carries no signature by the trusted key (it may be signed by another key)."""


class InvalidNoteSignature(NoteError):
    """A signature names the trusted key (name and id) but does not verify over the text."""


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key's name and id and the raw signature bytes."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed note: its text (with its final newline) and its signatures, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def format(self) -> str:
        return format_note(self.text, self.signatures)


def is_valid_key_name(name: str) -> bool:
    """Non-empty, with no Unicode space, no ``+`` and no control character."""
    return bool(name) and not any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name)


def ed25519_key_id(name: str, public_key: bytes) -> int:
    """The note key id: the first 4 bytes (big-endian) of SHA-256(name || LF || 0x01 || key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """An Ed25519 note key that a verifier trusts: its name, its id and its public key."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def for_key(cls, name: str, public_key: bytes) -> NoteVerifier:
        if not is_valid_key_name(name):
            raise MalformedNote(f"{name!r} is not a valid key name (no spaces, no '+')")
        if len(public_key) != ED25519_PUBLIC_KEY_SIZE:
            raise MalformedNote(f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
        return cls(name, ed25519_key_id(name, public_key), public_key)

    def verifier_key(self) -> str:
        """``<name>+<hex key id>+<base64(0x01 || public key)>``."""
        material = base64.b64encode(bytes([ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{material}"

    def verifies(self, text: str, signature: bytes) -> bool:
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text.encode())
        except InvalidSignature:
            return False
        return True


def parse_verifier_key(vkey: str) -> NoteVerifier:
    """Read a verifier key ``<name>+<hex key id>+<base64(0x01 || public key)>``.

    Refuses (``MalformedNote``) anything else: a wrong part count, a key id that is not 8 hex
    digits or does not match the name and key, another signature type, a wrong key length."""
    parts = vkey.strip().split("+", 2)  # base64 may contain '+': split name and id off only
    if len(parts) != 3:
        raise MalformedNote("a verifier key is <name>+<key id hex>+<base64 key>")
    name, key_id_hex, material_b64 = parts
    if not is_valid_key_name(name):
        raise MalformedNote(f"{name!r} is not a valid key name")
    if len(key_id_hex) != 8 or any(c not in "0123456789abcdef" for c in key_id_hex):
        raise MalformedNote(f"{key_id_hex!r} is not an 8-digit lowercase hex key id")
    material = _b64decode(material_b64, "the verifier key's key material")
    if not material or material[0] != ED25519:
        raise MalformedNote("the verifier key is not an Ed25519 key (type 0x01)")
    verifier = NoteVerifier.for_key(name, material[1:])
    if verifier.key_id != int(key_id_hex, 16):
        raise MalformedNote(f"key id {key_id_hex} does not match the key's name and public key")
    return verifier


@dataclass(frozen=True, slots=True)
class NoteSigner:
    """An Ed25519 private key under a key name, that signs notes."""

    name: str
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> NoteVerifier:
        public = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return NoteVerifier.for_key(self.name, public)

    def sign(self, text: str) -> NoteSignature:
        _check_text(text)
        return NoteSignature(self.name, self.verifier.key_id, self.private_key.sign(text.encode()))


def sign_note(text: str, signer: NoteSigner) -> str:
    """The signed note: ``text``, a blank line and ``signer``'s signature line."""
    return format_note(text, (signer.sign(text),))


def format_note(text: str, signatures: tuple[NoteSignature, ...]) -> str:
    _check_text(text)
    if not signatures:
        raise MalformedNote("a signed note has at least one signature")
    for signature in signatures:
        if not is_valid_key_name(signature.name):
            raise MalformedNote(f"{signature.name!r} is not a valid key name")
    return text + "\n" + "".join(s.line() for s in signatures)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNote("the note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise MalformedNote("the note text contains a control character")


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MalformedNote(f"{what} is not valid base64") from exc


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into its text and signature lines (no signature is checked)."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedNote("the note is not valid UTF-8") from exc
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise MalformedNote("the note contains a control character other than newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNote("the note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise MalformedNote("the note has no signature, or its last line has no newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"the note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise MalformedNote(f"{line[:40]!r} is not a signature line ('— name signature')")
        name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not space or not is_valid_key_name(name) or " " in encoded:
            raise MalformedNote(f"{line[:40]!r} is not a signature line ('— name signature')")
        blob = _b64decode(encoded, f"the signature of {name}")
        if len(blob) < 5:
            raise MalformedNote(f"the signature of {name} is too short")
        signatures.append(NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:]))
    return Note(text, tuple(signatures))


def open_note(note: str | bytes, verifier: NoteVerifier) -> Note:
    """Parse ``note`` and check it is signed by ``verifier``'s key.

    Returns the note with only the signatures that verified. Raises ``MalformedNote``,
    ``InvalidNoteSignature`` (a signature by the trusted name and id that does not verify) or
    ``UnverifiedNote`` (no signature by the trusted key; signatures by others are ignored)."""
    parsed = parse_note(note)
    verified = []
    for signature in parsed.signatures:
        if signature.name != verifier.name or signature.key_id != verifier.key_id:
            continue  # another key's signature: ignored, as the spec requires
        if not verifier.verifies(parsed.text, signature.signature):
            raise InvalidNoteSignature(
                f"the signature of {verifier.name}+{verifier.key_id:08x} does not verify"
            )
        verified.append(signature)
    if not verified:
        others = ", ".join(f"{s.name}+{s.key_id:08x}" for s in parsed.signatures)
        raise UnverifiedNote(
            f"the note is not signed by {verifier.name}+{verifier.key_id:08x} "
            f"(its signatures are by {others})"
        )
    return Note(parsed.text, tuple(verified))
