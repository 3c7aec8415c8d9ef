-- The query side's read model: one transcript per learner and one row per credential, kept by
-- the projector (a fold over ledger.entries.v1, learnerledger.query.projector). Statuses are not
-- stored: expiry and revocation are evaluated at the instant a transcript is read.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'll_projector') THEN
        CREATE ROLE ll_projector NOLOGIN;
    END IF;
    GRANT ll_projector TO CURRENT_USER;
END;
$$;

CREATE TABLE read_transcripts (
    learner_id                  text PRIMARY KEY CHECK (learner_id ~ '^[0-9]{12}$'),
    last_sequence               bigint NOT NULL CHECK (last_sequence >= 0),
    ledger_position             bigint NOT NULL,
    completions_without_credit  bigint NOT NULL DEFAULT 0,
    total_credits               numeric NOT NULL DEFAULT 0,
    consents                    text[] NOT NULL DEFAULT '{}',
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE read_credentials (
    learner_id           text NOT NULL REFERENCES read_transcripts (learner_id),
    sequence             bigint NOT NULL CHECK (sequence >= 1),
    issuer_id            text NOT NULL,
    completion_id        text NOT NULL,
    course_id            text NOT NULL,
    level                text NOT NULL,
    credits              numeric NOT NULL,
    completed_at         timestamptz NOT NULL,
    valid_until          timestamptz NOT NULL,
    recorded_at          timestamptz NOT NULL,
    revoked_by_sequence  bigint,
    revoked_at           timestamptz,
    PRIMARY KEY (learner_id, sequence)
);
CREATE INDEX read_credentials_by_issuer ON read_credentials (learner_id, issuer_id, sequence);

REVOKE ALL ON read_transcripts, read_credentials FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON read_transcripts, read_credentials TO ll_projector;
GRANT SELECT ON credit_log TO ll_projector;
GRANT SELECT ON read_transcripts, read_credentials TO ll_query;
