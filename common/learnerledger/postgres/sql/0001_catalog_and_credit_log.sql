-- Learner Ledger schema, version 1: catalog, credentials, the credit log and its bookkeeping.
-- Applied by `ledgerctl db migrate` as the database owner. Services connect with least
-- privilege (see 0002_roles.sql).

-- Partners and readers ----------------------------------------------------------------------
CREATE TABLE issuers (
    issuer_id     text PRIMARY KEY CHECK (issuer_id ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE universities (
    university_id text PRIMARY KEY CHECK (university_id ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- API tokens are stored only as SHA-256 hashes; the token itself is shown once.
CREATE TABLE api_tokens (
    token_id       text PRIMARY KEY,
    token_hash     bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    principal_kind text NOT NULL CHECK (principal_kind IN ('issuer', 'university', 'admin')),
    principal_id   text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

-- The course catalog. course_id is unique across issuers so that a completion naming another
-- issuer's course is recognised (PERMISSION_DENIED), not mistaken for an unknown course.
CREATE TABLE courses (
    course_id             text PRIMARY KEY CHECK (length(course_id) BETWEEN 1 AND 128),
    issuer_id             text NOT NULL REFERENCES issuers,
    title                 text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    ncrf_level            numeric(2,1) NOT NULL CHECK (ncrf_level IN (4.5, 5, 5.5, 6, 6.5, 7, 8)),
    notional_hours        integer NOT NULL CHECK (notional_hours BETWEEN 1 AND 9600),
    skills                text[] NOT NULL DEFAULT '{}',
    credit_recommendation text NOT NULL DEFAULT 'pending'
                          CHECK (credit_recommendation IN ('pending', 'approved', 'withdrawn')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX courses_by_issuer ON courses (issuer_id, course_id);

-- The credit log -----------------------------------------------------------------------------
-- One row per entry. Never updated, never deleted (trigger below, privileges in 0002).
-- tx_id is the writing transaction's id: readers that follow the log order by (tx_id, position)
-- and read only below the oldest transaction still running, so a row whose transaction commits
-- late is never skipped (see learnerledger.postgres.credit_log.read_committed_after).
CREATE TABLE credit_log (
    position          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id             xid8 NOT NULL DEFAULT pg_current_xact_id(),
    learner_id        text NOT NULL CHECK (learner_id ~ '^[0-9]{12}$'),
    sequence          bigint NOT NULL CHECK (sequence >= 1),
    kind              text NOT NULL CHECK (kind IN ('credit_awarded', 'recorded_without_credit',
                                         'credit_revoked', 'consent_granted', 'consent_revoked')),
    issuer_id         text,
    completion_id     text,
    payload           jsonb NOT NULL,
    canonical_json    bytea NOT NULL,
    rules_version     integer NOT NULL,
    source_event_id   uuid NOT NULL UNIQUE,
    source_partition  integer,
    source_offset     bigint,
    prev_hash         bytea NOT NULL CHECK (length(prev_hash) = 32),
    entry_hash        bytea NOT NULL CHECK (length(entry_hash) = 32),
    recorded_at       timestamptz NOT NULL,
    UNIQUE (learner_id, sequence)
);
CREATE INDEX credit_log_follow ON credit_log (tx_id, position);
CREATE INDEX credit_log_completion ON credit_log (learner_id, issuer_id, completion_id)
    WHERE completion_id IS NOT NULL;
CREATE INDEX credit_log_by_issuer_completion ON credit_log (issuer_id, completion_id)
    WHERE completion_id IS NOT NULL;

CREATE FUNCTION credit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_log is append-only: % refused (corrections are new entries)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER credit_log_no_update_delete BEFORE UPDATE OR DELETE ON credit_log
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER credit_log_no_truncate BEFORE TRUNCATE ON credit_log
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

-- Rejected requests: kept with their reason and the original bytes, for re-drive.
CREATE TABLE rejections (
    rejection_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_topic      text NOT NULL,
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    source_event_id   uuid,
    issuer_id         text,
    learner_id        text,
    completion_id     text,
    reason            text NOT NULL,
    detail            text NOT NULL,
    original_key      bytea,
    original_value    bytea NOT NULL,
    rejected_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX rejections_by_completion ON rejections (issuer_id, completion_id);
CREATE INDEX rejections_by_reason ON rejections (reason, rejected_at);

-- Kafka offsets of consuming groups, committed in the same transaction as what they produced.
CREATE TABLE consumer_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- How far the outbox relay has published the log to ledger.entries.v1 (per topic).
CREATE TABLE relay_progress (
    topic         text PRIMARY KEY,
    last_tx_id    xid8 NOT NULL,
    last_position bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Signed checkpoints of the log head (Ed25519). Append-only as well.
CREATE TABLE checkpoints (
    checkpoint_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    position      bigint NOT NULL,
    tx_horizon    xid8 NOT NULL,
    root_hash     bytea NOT NULL CHECK (length(root_hash) = 32),
    learner_count bigint NOT NULL,
    signed_at     timestamptz NOT NULL,
    signature     bytea NOT NULL,
    public_key    bytea NOT NULL,
    statement     bytea NOT NULL
);
CREATE TRIGGER checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
