-- Operations (issue 6): what `ledgerctl lag` and `ledgerctl replay` read as ll_admin.
-- lag compares the read model's applied sequences with the credit log's heads.
GRANT SELECT ON read_transcripts, read_credentials TO ll_admin;

-- Rebuilds of the read model (`ledgerctl replay projections`, LedgerAdminService.StartReplay).
-- A rebuild folds the log into tables of the same shape in a schema of its own
-- (build_schema), records its progress here in the same transaction as each batch (so an
-- interrupted rebuild resumes where it stopped), catches up with the log, and then replaces
-- the live tables in one transaction. At most one rebuild is unfinished at a time.
CREATE TABLE read_model_replays (
    replay_id        uuid PRIMARY KEY,
    source           text NOT NULL CHECK (source IN ('log', 'kafka')),
    learner_ids      text[] NOT NULL DEFAULT '{}',
    state            text NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    build_schema     text NOT NULL,
    cursor_learner   text NOT NULL DEFAULT '',
    cursor_sequence  bigint NOT NULL DEFAULT 0,
    kafka_offsets    jsonb NOT NULL DEFAULT '{}',
    entries_applied  bigint NOT NULL DEFAULT 0,
    entries_total    bigint NOT NULL DEFAULT 0,
    learners_done    bigint NOT NULL DEFAULT 0,
    through_position bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    error_message    text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX read_model_replays_one_unfinished ON read_model_replays ((true))
    WHERE state IN ('pending', 'running');
GRANT SELECT ON read_model_replays TO ll_admin;
