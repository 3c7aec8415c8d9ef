-- Checkpoints form a verifiable sequence (issue 12): each one names the digest of its
-- predecessor's signed statement and records the chain heads that changed since it (bound by
-- the signed changed_root), so the checkpointer extends the previous checkpoint from only the
-- entries added since, and a verifier can check every checkpoint against the one before.
-- Both tables stay append-only; checkpoints signed before this migration keep NULLs here
-- (statement version 1).
ALTER TABLE checkpoints
    ADD COLUMN previous_digest bytea CHECK (length(previous_digest) = 32),
    ADD COLUMN changed_root    bytea CHECK (length(changed_root) = 32),
    ADD COLUMN changed_count   bigint;
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

CREATE TABLE checkpoint_heads (
    checkpoint_id bigint NOT NULL REFERENCES checkpoints (checkpoint_id),
    learner_id    text NOT NULL,
    sequence      bigint NOT NULL,
    entry_hash    bytea NOT NULL CHECK (length(entry_hash) = 32),
    PRIMARY KEY (checkpoint_id, learner_id)
);
CREATE INDEX checkpoint_heads_by_learner ON checkpoint_heads (learner_id, checkpoint_id);
CREATE TRIGGER checkpoint_heads_no_update_delete BEFORE UPDATE OR DELETE ON checkpoint_heads
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER checkpoint_heads_no_truncate BEFORE TRUNCATE ON checkpoint_heads
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

REVOKE ALL ON checkpoint_heads FROM PUBLIC;
GRANT SELECT, INSERT ON checkpoint_heads TO ll_ledger;
GRANT SELECT ON checkpoint_heads TO ll_query, ll_admin;
