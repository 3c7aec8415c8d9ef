"""C2SP signed notes and tlog-checkpoints (domain/signed_note.py, domain/tlog_checkpoint.py).

Interoperability is shown on third-party data verified by our code: a real checkpoint of Go's
checksum database (sum.golang.org) with the verifier key the Go toolchain ships, the example of
the C2SP signed-note spec, and the signed notes of golang.org/x/mod's sumdb/note tests.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnerledger.domain.merkle import leaf_hash, root
from learnerledger.domain.signed_note import (
    InvalidNoteSignature,
    MalformedNote,
    NoteSigner,
    UnverifiedNote,
    ed25519_key_id,
    open_note,
    parse_note,
    parse_verifier_key,
    sign_note,
)
from learnerledger.domain.tlog_checkpoint import (
    MalformedCheckpoint,
    TreeCheckpoint,
    open_checkpoint,
    parse_checkpoint_body,
    sign_checkpoint,
)

# Go's checksum database: its verifier key (built into the go command) and a checkpoint it
# served for tree size 15368405 (as published by `curl https://sum.golang.org/latest`).
SUMDB_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_CHECKPOINT = (
    "go.sum database tree\n"
    "15368405\n"
    "/g9am3I6YWNKaZX/jkne1fqd9zEyjss+JXyPXG0WfkY=\n"
    "\n"
    "— sum.golang.org Az3grqJGUaSGukG9p8nI2vKgiFn7qGHxn0W+mrwyI6Gz3F0t1J3LzmWk/p96Ybf295Ejwd"
    "Swlzgijq5WA9d1Ded7owM=\n"
)

# The example of https://c2sp.org/signed-note ("Verifier keys", "Example").
C2SP_KEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXm"
    "RKuwHjG1Yu72IneyaQM=\n"
)

# golang.org/x/mod sumdb/note tests: two keys and their signatures over one text.
PETER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZ"
    "b6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33"
    "WWd1RvMc+QQ=\n"
)


def signer(name: str = "ledger.example/log") -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.generate())


# --- third-party notes -----------------------------------------------------------------------


def test_a_real_sum_golang_org_checkpoint_verifies_with_the_go_toolchains_key() -> None:
    checkpoint = open_checkpoint(SUMDB_CHECKPOINT, parse_verifier_key(SUMDB_KEY))
    assert checkpoint.origin == "go.sum database tree"
    assert checkpoint.size == 15368405
    assert base64.b64encode(checkpoint.root_hash).decode() == (
        "/g9am3I6YWNKaZX/jkne1fqd9zEyjss+JXyPXG0WfkY="
    )


def test_the_sum_golang_org_checkpoint_with_another_size_is_refused() -> None:
    forged = SUMDB_CHECKPOINT.replace("15368405", "15368404")
    with pytest.raises(InvalidNoteSignature):
        open_checkpoint(forged, parse_verifier_key(SUMDB_KEY))


def test_the_c2sp_signed_note_example_verifies() -> None:
    note = open_note(C2SP_NOTE, parse_verifier_key(C2SP_KEY))
    assert note.text == "This is an example message.\n"
    assert [(s.name, s.key_id) for s in note.signatures] == [("example.com/foo", 0x530D903A)]


def test_go_note_package_vectors_verify_each_with_its_own_key() -> None:
    note = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    peter = open_note(note, parse_verifier_key(PETER_KEY))
    enoch = open_note(note, parse_verifier_key(ENOCH_KEY))
    assert peter.text == GO_TEXT
    assert [s.name for s in peter.signatures] == ["PeterNeumann"]
    assert [s.name for s in enoch.signatures] == ["EnochRoot"]


def test_our_signature_line_matches_the_go_note_package_for_the_same_key() -> None:
    # Go's test signer key is PRIVATE+KEY+PeterNeumann+c74f20a3+<base64(0x01 || seed)>.
    seed = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
    peter = NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
    assert peter.verifier.verifier_key() == PETER_KEY
    assert sign_note(GO_TEXT, peter) == GO_TEXT + "\n" + PETER_SIG


def test_a_note_signed_only_by_another_key_is_unverified() -> None:
    with pytest.raises(UnverifiedNote, match="not signed by PeterNeumann"):
        open_note(GO_TEXT + "\n" + ENOCH_SIG, parse_verifier_key(PETER_KEY))


def test_a_corrupted_signature_by_the_trusted_key_rejects_the_note() -> None:
    corrupted = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(InvalidNoteSignature):
        open_note(GO_TEXT + "\n" + corrupted, parse_verifier_key(PETER_KEY))


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,  # no blank line, no signature
        GO_TEXT + "\n",  # no signature
        GO_TEXT + "\n" + PETER_SIG[:-1],  # last line without newline
        "\x01" + GO_TEXT + "\n" + PETER_SIG,  # control character
        GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter Neumann"),  # space in name
        GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        GO_TEXT + "\n" + PETER_SIG * 101,  # too many signatures
        GO_TEXT + "\n— PeterNeumann !!!!\n",  # not base64
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(MalformedNote):
        open_note(note, parse_verifier_key(PETER_KEY))


def test_invalid_utf8_is_malformed() -> None:
    with pytest.raises(MalformedNote, match="UTF-8"):
        parse_note(b"\xff" + (GO_TEXT + "\n" + PETER_SIG).encode())


@pytest.mark.parametrize(
    "vkey",
    [
        PETER_KEY[:-1],  # truncated key
        PETER_KEY.replace("c74f20a3", "c74f20a4"),  # id does not match
        PETER_KEY.replace("PeterNeumann", "PeterNeuman"),  # name does not match the id
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown type
        "PeterNeumann+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_mangled_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(MalformedNote):
        parse_verifier_key(vkey)


def test_key_id_is_the_first_four_bytes_of_the_spec_hash() -> None:
    verifier = parse_verifier_key(C2SP_KEY)
    assert ed25519_key_id(verifier.name, verifier.public_key) == 0x530D903A


# --- our own checkpoints -------------------------------------------------------------------


def test_checkpoint_body_is_the_c2sp_text() -> None:
    tree_root = root([leaf_hash(bytes([i])) for i in range(5)])
    checkpoint = TreeCheckpoint("ledger.example/log", 5, tree_root, ("extension",))
    expected = f"ledger.example/log\n5\n{base64.b64encode(tree_root).decode()}\nextension\n"
    assert checkpoint.body() == expected
    assert parse_checkpoint_body(expected) == checkpoint


def test_a_signed_checkpoint_round_trips_and_names_its_key() -> None:
    key = signer()
    checkpoint = TreeCheckpoint("ledger.example/log", 0, root([]))
    note = sign_checkpoint(checkpoint, key)
    assert note.startswith(checkpoint.body() + "\n— ledger.example/log ")
    assert open_checkpoint(note, key.verifier, origin="ledger.example/log") == checkpoint
    with pytest.raises(MalformedCheckpoint, match="not 'other/log'"):
        open_checkpoint(note, key.verifier, origin="other/log")


def test_a_checkpoint_signed_by_another_key_of_the_same_name_is_unverified() -> None:
    checkpoint = TreeCheckpoint("ledger.example/log", 1, leaf_hash(b"x"))
    with pytest.raises(UnverifiedNote):
        open_checkpoint(sign_checkpoint(checkpoint, signer()), signer().verifier)


@pytest.mark.parametrize(
    "body",
    [
        "log\n5\n",  # two lines
        "log\n05\n" + base64.b64encode(bytes(32)).decode() + "\n",  # leading zero
        "log\n-5\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "log\nfive\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "log\n5\n" + base64.b64encode(bytes(31)).decode() + "\n",  # short root
        "log\n5\nnot base64!\n",
        "log\n5\n" + base64.b64encode(bytes(32)).decode() + "\n\n",  # empty extension line
        "\n5\n" + base64.b64encode(bytes(32)).decode() + "\n",  # empty origin
        "log\n5\n" + base64.b64encode(bytes(32)).decode(),  # no final newline
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(MalformedCheckpoint):
        parse_checkpoint_body(body)
