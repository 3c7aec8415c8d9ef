"""The verifiable log over plain HTTP, on the real PostgreSQL: ``GET /checkpoint``,
``/proof/inclusion`` and ``/proof/consistency`` served by the query service without a token,
checked with the offline verifier and the signer's key only; malformed requests are 400s and
heads, leaves and sizes that do not exist are 404s, each with a reason."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnerledger.domain.merkle import leaf_hash, root_from_inclusion_proof
from learnerledger.domain.proofs import parse_consistency_proof, verify_consistency_between
from learnerledger.domain.signed_note import NoteSigner
from learnerledger.domain.tlog_checkpoint import open_checkpoint
from learnerledger.ledger.tree_heads import take_tree_head
from learnerledger.postgres.credit_log import append_entries
from tests.conftest import FreshDatabase, StackInfo, new_database
from tests.support.ledger import eventually
from tests.support.verifiable_log import first_entry, running_http

pytestmark = pytest.mark.integration

ORIGIN = "test.learnerledger/http"


@pytest.fixture
async def database(stack: StackInfo, stack_logins: dict[str, str]) -> AsyncIterator[FreshDatabase]:
    async with new_database(stack, stack_logins) as db:
        yield db


async def grow_and_sign(connection: asyncpg.Connection, signer: NoteSigner, size: int) -> str:
    """Sign a tree head over the log's first ``size`` entries (all of them); its note."""
    notes: list[str] = []

    async def signed() -> bool:  # the commit horizon is cluster-wide: wait out other writers
        result = await take_tree_head(connection, signer)
        if result.signed is not None:
            notes.append(result.signed.note)
        return result.tree_size == size

    await eventually(signed, what=f"a signed tree head of {size} entries")
    return notes[-1]


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any, str]:
    async with session.get(url) as response:
        text = await response.text()
        body = await response.json() if response.content_type == "application/json" else text
        return response.status, body, response.content_type


async def test_checkpoints_and_proofs_over_http_verify_with_the_key_alone(
    database: FreshDatabase,
) -> None:
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    verifier = signer.verifier
    writer = await asyncpg.connect(database.url)
    try:
        async with running_http(database.url) as base, aiohttp.ClientSession() as session:
            status, body, _ = await get(session, f"{base}/checkpoint")
            assert status == 404
            assert body["error"]["reason"] == "TREE_HEAD_NOT_FOUND"

            entries = [first_entry(f"60000000000{n}") for n in range(5)]
            await append_entries(writer, entries)
            note5 = await grow_and_sign(writer, signer, 5)
            more = [first_entry(f"60000000001{n}") for n in range(3)]
            await append_entries(writer, more)
            note8 = await grow_and_sign(writer, signer, 8)

            # the latest head, verbatim, as text/plain; an older one by size
            status, text, content_type = await get(session, f"{base}/checkpoint")
            assert (status, content_type) == (200, "text/plain")
            assert text == note8
            latest = open_checkpoint(text, verifier, origin=ORIGIN)
            assert latest.size == 8
            status, text, _ = await get(session, f"{base}/checkpoint?tree_size=5")
            assert (status, text) == (200, note5)

            # inclusion by leaf index and by entry hash, against the latest and an older head
            entry_hash = more[1].entry_hash
            leaf_index = await writer.fetchval(
                """SELECT l.leaf_index FROM merkle_tree_leaves l JOIN credit_log c
                     USING (position) WHERE c.entry_hash = $1""",
                entry_hash,
            )
            status, by_hash, _ = await get(
                session, f"{base}/proof/inclusion?entry_hash={entry_hash.hex()}"
            )
            assert status == 200, by_hash
            status, by_index, _ = await get(
                session, f"{base}/proof/inclusion?leaf_index={leaf_index}"
            )
            assert status == 200, by_index
            assert by_hash == by_index
            assert by_hash["leaf_index"] == leaf_index
            assert by_hash["tree_size"] == 8
            assert by_hash["checkpoint"] == note8
            assert base64.b64decode(by_hash["leaf_hash"]) == leaf_hash(entry_hash)
            proof = [base64.b64decode(h) for h in by_hash["inclusion_proof"]]
            assert (
                root_from_inclusion_proof(leaf_index, 8, leaf_hash(entry_hash), proof)
                == latest.root_hash
            )
            old = entries[0].entry_hash
            status, at5, _ = await get(
                session, f"{base}/proof/inclusion?entry_hash={old.hex()}&tree_size=5"
            )
            assert status == 200, at5
            head5 = open_checkpoint(at5["checkpoint"], verifier, origin=ORIGIN)
            proof5 = [base64.b64decode(h) for h in at5["inclusion_proof"]]
            assert (
                root_from_inclusion_proof(at5["leaf_index"], 5, leaf_hash(old), proof5)
                == head5.root_hash
            )

            # the consistency proof is the file `ledgerctl proof consistency` reads
            status, body, _ = await get(session, f"{base}/proof/consistency?from=5&to=8")
            assert status == 200, body
            consistency = parse_consistency_proof(json.dumps(body))
            verify_consistency_between(note5, note8, consistency, verifier)

            # errors: 400 for what is malformed, 404 for what does not exist (yet)
            for query, field in [
                ("/proof/inclusion", "leaf_index"),
                ("/proof/inclusion?leaf_index=1&entry_hash=" + "00" * 32, "leaf_index"),
                ("/proof/inclusion?leaf_index=abc", "leaf_index"),
                ("/proof/inclusion?leaf_index=-1", "leaf_index"),
                ("/proof/inclusion?entry_hash=zz", "entry_hash"),
                ("/proof/inclusion?entry_hash=" + "ab" * 31, "entry_hash"),
                ("/proof/inclusion?leaf_index=1&tree_size=0", "tree_size"),
                ("/proof/consistency?from=5", "to"),
                ("/proof/consistency?from=0&to=8", "from"),
                ("/proof/consistency?from=8&to=5", "to"),
                ("/proof/consistency?from=5&to=99999999999999999999", "to"),
                ("/checkpoint?tree_size=x", "tree_size"),
            ]:
                status, body, _ = await get(session, base + query)
                assert status == 400, (query, body)
                assert body["error"]["reason"] == "INVALID_ARGUMENT", query
                assert body["error"]["field_violations"][0]["field"] == field, (query, body)
            for query, reason in [
                ("/checkpoint?tree_size=6", "TREE_HEAD_NOT_FOUND"),
                ("/proof/inclusion?leaf_index=8", "LEAF_NOT_FOUND"),
                ("/proof/inclusion?leaf_index=6&tree_size=5", "LEAF_NOT_FOUND"),
                ("/proof/inclusion?leaf_index=1&tree_size=7", "TREE_HEAD_NOT_FOUND"),
                ("/proof/inclusion?entry_hash=" + "00" * 32, "LEAF_NOT_FOUND"),
                ("/proof/consistency?from=5&to=9", "TREE_TOO_SMALL"),
            ]:
                status, body, _ = await get(session, base + query)
                assert status == 404, (query, body)
                assert body["error"]["reason"] == reason, (query, body)
            async with session.post(f"{base}/checkpoint") as response:
                assert response.status == 405  # read-only
    finally:
        await writer.close()
