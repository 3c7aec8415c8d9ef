-- Redemption (issue 14): universities redeem a learner's credits toward a programme.
--
-- Two new entry kinds: credits_redeemed (the debit) and redemption_refused (decided, nothing
-- redeemed). Both are chained and hashed like every entry.
ALTER TABLE credit_log DROP CONSTRAINT credit_log_kind_check;
ALTER TABLE credit_log ADD CONSTRAINT credit_log_kind_check CHECK (kind IN (
    'credit_awarded', 'recorded_without_credit', 'credit_revoked', 'consent_granted',
    'consent_revoked', 'credits_redeemed', 'redemption_refused'));

-- courses.category: where a course's credit comes from, for the caps at redemption (SWAYAM
-- MOOCs <= 40 %, micro-credentials <= 50 % of a programme's credits). Existing courses are
-- university courses until an admin says otherwise.
ALTER TABLE courses ADD COLUMN category text NOT NULL DEFAULT 'university_course'
    CONSTRAINT courses_category_check
    CHECK (category IN ('swayam_mooc', 'micro_credential', 'university_course', 'skilling'));

-- A university's degrees and diplomas. Only inserted (a programme is not edited or deleted:
-- redemptions toward it name it for ever).
CREATE TABLE programmes (
    programme_id    text PRIMARY KEY CHECK (programme_id ~ '^[a-z0-9][a-z0-9._-]{0,127}$'),
    university_id   text NOT NULL REFERENCES universities (university_id),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    ncrf_level      numeric NOT NULL,
    total_credits   numeric NOT NULL CHECK (total_credits >= 1 AND total_credits <= 320),
    validity_years  integer CHECK (validity_years BETWEEN 1 AND 7),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX programmes_by_university ON programmes (university_id, programme_id);
CREATE TRIGGER programmes_no_update_delete BEFORE UPDATE OR DELETE ON programmes
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER programmes_no_truncate BEFORE TRUNCATE ON programmes
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

-- RedeemCredits' idempotency: a university's redemption id names one request. The same request
-- again is a retry (same event id); the id reused with other content is refused (ALREADY_EXISTS).
CREATE TABLE redemption_requests (
    university_id   text NOT NULL REFERENCES universities (university_id),
    redemption_id   text NOT NULL CHECK (length(redemption_id) BETWEEN 1 AND 128),
    learner_id      text NOT NULL CHECK (learner_id ~ '^[0-9]{12}$'),
    programme_id    text NOT NULL REFERENCES programmes (programme_id),
    request_digest  text NOT NULL,
    event_id        uuid NOT NULL UNIQUE,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (university_id, redemption_id)
);
CREATE TRIGGER redemption_requests_no_update_delete BEFORE UPDATE OR DELETE ON redemption_requests
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER redemption_requests_no_truncate BEFORE TRUNCATE ON redemption_requests
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

-- One row per redeemed credential, written by the ledger in the transaction that appends the
-- credits_redeemed entry: the primary key makes "never spent twice" a constraint as well as a
-- rule (a second redemption of the same credential fails its transaction), and it is the index
-- the ledger reads running totals and redeemed credentials from.
CREATE TABLE redeemed_credentials (
    learner_id           text NOT NULL,
    credential_sequence  bigint NOT NULL CHECK (credential_sequence >= 1),
    redemption_sequence  bigint NOT NULL CHECK (redemption_sequence > credential_sequence),
    university_id        text NOT NULL,
    programme_id         text NOT NULL,
    redemption_id        text NOT NULL,
    category             text NOT NULL,
    credits              numeric NOT NULL CHECK (credits > 0),
    redeemed_at          timestamptz NOT NULL,
    PRIMARY KEY (learner_id, credential_sequence),
    FOREIGN KEY (learner_id, credential_sequence) REFERENCES credit_log (learner_id, sequence),
    FOREIGN KEY (learner_id, redemption_sequence) REFERENCES credit_log (learner_id, sequence)
);
CREATE INDEX redeemed_credentials_by_programme ON redeemed_credentials (learner_id, programme_id);
CREATE TRIGGER redeemed_credentials_no_update_delete BEFORE UPDATE OR DELETE
    ON redeemed_credentials FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER redeemed_credentials_no_truncate BEFORE TRUNCATE ON redeemed_credentials
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

REVOKE ALL ON programmes, redemption_requests, redeemed_credentials FROM PUBLIC;
GRANT SELECT, INSERT ON programmes, redemption_requests TO ll_admin;
GRANT SELECT ON redeemed_credentials TO ll_admin, ll_query;
GRANT SELECT ON programmes TO ll_ledger, ll_query;
GRANT SELECT, INSERT ON redeemed_credentials TO ll_ledger;
