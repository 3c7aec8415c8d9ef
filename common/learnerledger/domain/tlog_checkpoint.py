"""C2SP transparency-log checkpoints (https://c2sp.org/tlog-checkpoint), pure.

A checkpoint is a signed note (``signed_note``) whose text is exactly::

    <origin>
    <tree size, ASCII decimal, no leading zeroes>
    <base64 of the RFC 6962/9162 Merkle root hash>
    [extension lines, each non-empty]

each line ending in a newline. The origin names the log (e.g. ``example.com/log42``); the key
that signs it usually has the same name but need not (sum.golang.org signs the origin
``go.sum database tree``). Any transparency tooling that reads checkpoints reads ours.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from learnerledger.domain.merkle import HASH_SIZE
from learnerledger.domain.signed_note import (
    MalformedNote,
    NoteSigner,
    NoteVerifier,
    open_note,
    sign_note,
)


class MalformedCheckpoint(MalformedNote):
    """The note text is not a tlog-checkpoint body."""


@dataclass(frozen=True, slots=True)
class TreeCheckpoint:
    """A Merkle tree head as a checkpoint states it: the log, the tree size and its root."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or any(ord(c) < 0x20 for c in self.origin):
            raise MalformedCheckpoint("the origin must be a non-empty line")
        if self.size < 0:
            raise MalformedCheckpoint(f"the tree size {self.size} is negative")
        if len(self.root_hash) != HASH_SIZE:
            raise MalformedCheckpoint(f"the root hash has {len(self.root_hash)} bytes, not 32")
        for line in self.extensions:
            if not line or any(ord(c) < 0x20 for c in line):
                raise MalformedCheckpoint("an extension line must be a non-empty line")

    def body(self) -> str:
        """The note text: origin, size, base64 root and extension lines, each with a newline."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )


def parse_checkpoint_body(text: str) -> TreeCheckpoint:
    """Read a checkpoint's note text (``MalformedCheckpoint`` unless it is exactly the format)."""
    if not text.endswith("\n"):
        raise MalformedCheckpoint("the checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedCheckpoint("a checkpoint has at least three lines: origin, size, root")
    origin, size_text, root_text, *extensions = lines
    if not size_text.isascii() or not size_text.isdigit():
        raise MalformedCheckpoint(f"the tree size {size_text!r} is not a decimal number")
    if size_text != str(int(size_text)):
        raise MalformedCheckpoint(f"the tree size {size_text!r} has leading zeroes")
    try:
        root_hash = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MalformedCheckpoint(f"the root hash {root_text!r} is not base64") from exc
    if base64.b64encode(root_hash).decode("ascii") != root_text:
        raise MalformedCheckpoint(f"the root hash {root_text!r} is not canonical base64")
    return TreeCheckpoint(origin, int(size_text), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: TreeCheckpoint, signer: NoteSigner) -> str:
    """The signed checkpoint note."""
    return sign_note(checkpoint.body(), signer)


def open_checkpoint(
    note: str | bytes, verifier: NoteVerifier, *, origin: str | None = None
) -> TreeCheckpoint:
    """Check ``note``'s signature with ``verifier`` (the key the caller trusts), then read it.

    ``origin``, if given, must be the checkpoint's origin line. Raises the ``signed_note``
    errors for the signature and ``MalformedCheckpoint`` for the body."""
    checkpoint = parse_checkpoint_body(open_note(note, verifier).text)
    if origin is not None and checkpoint.origin != origin:
        raise MalformedCheckpoint(
            f"the checkpoint is for the log {checkpoint.origin!r}, not {origin!r}"
        )
    return checkpoint
