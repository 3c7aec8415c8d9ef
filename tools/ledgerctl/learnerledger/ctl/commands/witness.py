"""``ledgerctl witness``: refuse signed tree heads that do not extend the last one accepted.

``check``: one witness step on files. ``follow``: every new head from the topic
``ledger.checkpoints.v1`` (each record's value is the note; its ``consistency-proof`` header
the proof from the head published before it), or by polling the query service's
``GET /checkpoint`` and ``GET /proof/consistency``.

The state file holds the last checkpoint accepted (and, when following the topic, the offset
to continue from). A new checkpoint (and, when its tree is larger, the consistency proof from
the accepted size) is accepted only if signed by the trusted key and a consistent extension;
then the state is replaced atomically. Exit 0 accepted (or the same checkpoint again; ``follow
--once``: everything up to now), 1 a rollback, a fork or a checkpoint not signed by the key
(the state is left as it was), 2 unreadable input, a missing proof or an unreachable source.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from learnerledger.ctl.commands.proof import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_REJECTED,
    KEY_HELP,
    UnreadableInput,
    read_input,
    trusted_verifier,
)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _save(path: Path, state: Any, follow: dict[str, Any] | None) -> None:
    document = json.loads(state.to_json())
    if follow is not None:
        document["follow"] = follow
    _write_atomically(path, json.dumps(document, indent=2) + "\n")


def cmd_witness_check(args: argparse.Namespace) -> int:
    from learnerledger.domain.proofs import BadInput, ProofRejected, parse_consistency_proof
    from learnerledger.domain.witness import WitnessAlarm, load_state, witness_step

    state_path = Path(args.state)
    try:
        verifier = trusted_verifier(args.key)
        state = (
            load_state(read_input(args.state, "witness state"), verifier)
            if state_path.exists()
            else None
        )
        note = read_input(args.checkpoint, "checkpoint")
        proof = parse_consistency_proof(read_input(args.proof, "proof")) if args.proof else None
        new_state = witness_step(state, note, proof, verifier)
        if new_state is not state:
            _save(state_path, new_state, None)
    except WitnessAlarm as exc:
        print(f"ledgerctl witness: ALARM ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except ProofRejected as exc:
        print(f"ledgerctl witness: REJECTED ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except (BadInput, UnreadableInput, OSError) as exc:
        print(f"ledgerctl witness: bad input ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    cp = new_state.checkpoint
    if state is None:
        print(f"accepted the first checkpoint of {cp.origin!r}: tree size {cp.size}")
    elif new_state is state:
        print(f"unchanged: {cp.origin!r} is still at tree size {cp.size}")
    else:
        print(
            f"accepted: {cp.origin!r} grew from tree size {state.checkpoint.size} to "
            f"{cp.size}, consistently"
        )
    return EXIT_OK


class SourceUnavailable(Exception):
    """The topic or the HTTP API cannot be read (or lacks a proof the witness needs); exit 2."""


class Follower:
    """A witness following one source, its state on disk after every accepted head."""

    def __init__(self, state_path: Path, verifier: Any, url: str | None) -> None:
        from learnerledger.domain.witness import WitnessState, load_state

        self.path = state_path
        self.verifier = verifier
        self.url = url.rstrip("/") if url else None
        self.state: WitnessState | None = None
        self.follow: dict[str, Any] | None = None
        self.accepted = 0
        if state_path.exists():
            text = read_input(str(state_path), "witness state")
            self.state = load_state(text, verifier)
            follow = json.loads(text).get("follow")
            self.follow = follow if isinstance(follow, dict) else None

    def see(self, note: str, proof: Any, follow: dict[str, Any] | None) -> None:
        """One head: accept it (saving the state) or raise ``WitnessAlarm`` / ``BadInput``."""
        from learnerledger.domain.witness import witness_step

        before = self.state
        old_size = None if before is None else before.checkpoint.size
        if before is not None and proof is not None and proof.old_size != old_size:
            proof = None  # a proof from another head than the one accepted: not usable
        new = self._opened(note)
        if before is not None and proof is None and new.size > before.checkpoint.size:
            proof = self._proof_over_http(before.checkpoint.size, new.size)
        self.state = witness_step(before, note, proof, self.verifier)
        self.follow = follow
        _save(self.path, self.state, follow)
        if self.state is not before:
            self.accepted += 1
            print(
                f"accepted: {new.origin!r} at tree size {new.size}"
                + (f" (extends {old_size}, consistently)" if old_size is not None else " (first)"),
                flush=True,
            )

    def _opened(self, note: str) -> Any:
        from learnerledger.domain.proofs import open_trusted_checkpoint

        return open_trusted_checkpoint(note, self.verifier)

    def _proof_over_http(self, old_size: int, new_size: int) -> Any:
        from learnerledger.domain.proofs import parse_consistency_proof

        if self.url is None:
            raise SourceUnavailable(
                f"no consistency proof from the accepted tree size {old_size} to {new_size} "
                "came with the head; give --url to fetch it from the query service"
            )
        query = urllib.parse.urlencode({"from": old_size, "to": new_size})
        return parse_consistency_proof(self.get(f"/proof/consistency?{query}"))

    def get(self, path: str) -> str:
        assert self.url is not None
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return str(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace")[:500]
            raise SourceUnavailable(f"GET {self.url + path}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
            raise SourceUnavailable(f"GET {self.url + path}: {exc}") from exc

    def catching_up(self, note: str) -> bool:
        """True for a head of the history before the accepted one, seen while reading the topic
        from its start with a state that has no cursor on it: an older head is skipped, one of
        the same size must be the same tree (else ``Fork``)."""
        from learnerledger.domain.witness import Fork

        assert self.state is not None
        new, old = self._opened(note), self.state.checkpoint
        if new.size > old.size:
            return False
        if new.size == old.size and new.root_hash != old.root_hash:
            raise Fork(f"fork: two different trees of {new.size} entries were signed")
        return True


async def _follow_topic(follower: Follower, topic: str, once: bool, poll_s: float) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    from learnerledger.config import CommonSettings
    from learnerledger.domain.proofs import parse_consistency_proof
    from learnerledger.kafka.producer import header
    from learnerledger.kafka.security import client_options

    settings = CommonSettings()
    partition = TopicPartition(topic, 0)
    cursor = follower.follow if follower.follow and follower.follow.get("topic") == topic else None
    catching_up = follower.state is not None and cursor is None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="ledgerctl-witness",
        **client_options(settings),
    )
    try:
        async with asyncio.timeout(30):
            await consumer.start()
            consumer.assign([partition])
            if cursor is not None:
                consumer.seek(partition, int(cursor["next_offset"]))
            else:
                await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
    except (KafkaError, TimeoutError) as exc:
        await consumer.stop()
        raise SourceUnavailable(f"cannot read the topic {topic}: {exc}") from exc
    try:
        while True:
            position = await consumer.position(partition)
            if once and position >= end:
                return
            batches = await consumer.getmany(partition, timeout_ms=int(poll_s * 1000))
            for record in batches.get(partition, []):
                note = (record.value or b"").decode("utf-8", errors="replace")
                follow = {"topic": topic, "next_offset": record.offset + 1}
                try:
                    if catching_up and follower.catching_up(note):
                        continue
                    catching_up = False
                    proof_text = header(record.headers, "consistency-proof")
                    proof = parse_consistency_proof(proof_text) if proof_text else None
                    follower.see(note, proof, follow)
                except Exception as exc:
                    exc.add_note(f"the record at offset {record.offset} of {topic}")
                    raise
    finally:
        await consumer.stop()


def _follow_url(follower: Follower, once: bool, poll_s: float) -> None:
    import time

    while True:
        follower.see(follower.get("/checkpoint"), None, None)
        if once:
            return
        time.sleep(poll_s)


def cmd_witness_follow(args: argparse.Namespace) -> int:
    from learnerledger.domain.proofs import BadInput, ProofRejected
    from learnerledger.domain.witness import WitnessAlarm

    where = f"the topic {args.topic}" if args.topic else args.url
    try:
        follower = Follower(Path(args.state), trusted_verifier(args.key), args.url)
        if args.topic:
            asyncio.run(_follow_topic(follower, args.topic, args.once, args.poll_s))
        else:
            _follow_url(follower, args.once, args.poll_s)
    except WitnessAlarm as exc:
        print(f"ledgerctl witness: ALARM ({type(exc).__name__}): {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):
            print(f"  at {note}", file=sys.stderr)
        return EXIT_REJECTED
    except ProofRejected as exc:
        print(f"ledgerctl witness: REJECTED ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except (BadInput, UnreadableInput, SourceUnavailable, OSError) as exc:
        print(f"ledgerctl witness: bad input ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        pass
    size = "nothing" if follower.state is None else f"tree size {follower.state.checkpoint.size}"
    print(f"followed {where}: {follower.accepted} new head(s) accepted, now at {size}")
    return EXIT_OK


def add_witness_commands(commands: Any) -> None:
    group = commands.add_parser("witness", help="refuse checkpoints that rewrite or roll back")
    actions = group.add_subparsers(dest="witness_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="accept a new checkpoint if it extends the last one accepted"
    )
    check.set_defaults(handler=cmd_witness_check)
    check.add_argument("checkpoint", metavar="CHECKPOINT")
    check.add_argument(
        "proof", metavar="PROOF.json", nargs="?", help="consistency proof from the accepted size"
    )
    check.add_argument("--state", required=True, help="the witness's state file (created)")
    check.add_argument("--key", required=True, help=KEY_HELP)

    follow = actions.add_parser(
        "follow",
        help="accept each new signed tree head from the checkpoint topic or GET /checkpoint",
    )
    follow.set_defaults(handler=cmd_witness_follow)
    source = follow.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--topic",
        help="follow this Kafka topic (ledger.checkpoints.v1; KAFKA_* settings say where and "
        "how to log in)",
    )
    source.add_argument(
        "--url", help="poll the query service's HTTP API at this base URL (http[s]://host:port)"
    )
    follow.add_argument("--state", required=True, help="the witness's state file (created)")
    follow.add_argument("--key", required=True, help=KEY_HELP)
    follow.add_argument(
        "--once", action="store_true", help="stop after what is there now (default: follow)"
    )
    follow.add_argument(
        "--poll-s", type=float, default=5.0, help="seconds between polls (default 5)"
    )
