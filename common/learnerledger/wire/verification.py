"""Chain and checkpoint verification results -> ``learnerledger.v1`` messages."""

from __future__ import annotations

from learnerledger.domain.checkpoints import Coverage, Discrepancy, SignedCheckpoint
from learnerledger.domain.hash_chain import ChainBreak, ChainHead
from learnerledger.v1 import common_pb2
from learnerledger.wire.instants import to_timestamp

COVERAGE_TO_PROTO = {
    Coverage.VERIFIED: common_pb2.CHECKPOINT_COVERAGE_VERIFIED,
    Coverage.NO_CHECKPOINT: common_pb2.CHECKPOINT_COVERAGE_NO_CHECKPOINT,
    Coverage.NOT_COVERED: common_pb2.CHECKPOINT_COVERAGE_NOT_COVERED,
    Coverage.BROKEN: common_pb2.CHECKPOINT_COVERAGE_BROKEN,
}


def chain_break_to_proto(found: ChainBreak) -> common_pb2.ChainBreak:
    return common_pb2.ChainBreak(
        learner_id=found.learner_id,
        sequence=found.sequence,
        expected_hash=found.expected_hash,
        stored_hash=found.stored_hash,
        reason=found.reason,
    )


def chain_head_to_proto(head: ChainHead) -> common_pb2.ChainHead:
    return common_pb2.ChainHead(
        learner_id=head.learner_id, sequence=head.sequence, entry_hash=head.entry_hash
    )


def signed_checkpoint_to_proto(
    signed: SignedCheckpoint, number: int = 0
) -> common_pb2.SignedCheckpoint:
    checkpoint = signed.checkpoint
    return common_pb2.SignedCheckpoint(
        position=checkpoint.position,
        tx_horizon=checkpoint.tx_horizon,
        root_hash=checkpoint.root_hash,
        learner_count=checkpoint.learner_count,
        signed_at=to_timestamp(checkpoint.signed_at),
        signature=signed.signature,
        public_key=signed.public_key,
        key_id=signed.key_id,
        previous_digest=checkpoint.previous or b"",
        changed_root=checkpoint.changed_root or b"",
        changed_count=checkpoint.changed_count,
        number=number,
    )


def checkpoint_problem_to_proto(problem: Discrepancy) -> common_pb2.CheckpointProblem:
    return common_pb2.CheckpointProblem(
        checkpoint_number=problem.checkpoint_number or 0,
        learner_id=problem.learner_id or "",
        reason=problem.reason,
    )
