-- Credits exported as verifiable credentials (issue 16, "Credits as verifiable credentials").
--
-- credential_status_entries: each exported credit's place in a W3C Bitstring Status List
-- (status_list 1, 2, ... each of learnerledger.domain.credentials.STATUS_LIST_SIZE bits), at
-- an index drawn at random when the credit is first exported (so the index says nothing about
-- the learner or the order of issuance), and the salt of the learner's hashed identifier in
-- that credential. Whether the bit is set is not stored: the status list is computed from the
-- read model (read_credentials.revoked_at) when it is served, so an issuer's revocation shows
-- as soon as the projector applied it. Append-only: a credential keeps its index forever.
--
-- credential_issuer_keys: every key the query service has signed credentials with (Ed25519
-- public keys, identified by their RFC 7638 JWK thumbprint); the served DID document lists all
-- of them, so a credential signed before a key rotation keeps verifying. Append-only.
CREATE TABLE credential_status_entries (
    learner_id    text NOT NULL CHECK (learner_id ~ '^[0-9]{12}$'),
    sequence      bigint NOT NULL CHECK (sequence >= 1),
    status_list   integer NOT NULL CHECK (status_list >= 1),
    status_index  integer NOT NULL CHECK (status_index >= 0),
    subject_salt  text NOT NULL CHECK (subject_salt ~ '^[0-9a-f]{32}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (learner_id, sequence),
    UNIQUE (status_list, status_index)
);
CREATE TRIGGER credential_status_entries_no_update_delete
    BEFORE UPDATE OR DELETE ON credential_status_entries
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER credential_status_entries_no_truncate BEFORE TRUNCATE ON credential_status_entries
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

CREATE TABLE credential_issuer_keys (
    key_id         text PRIMARY KEY CHECK (key_id ~ '^[A-Za-z0-9_-]{43}$'),
    public_key     bytea NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
    first_used_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER credential_issuer_keys_no_update_delete
    BEFORE UPDATE OR DELETE ON credential_issuer_keys
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER credential_issuer_keys_no_truncate BEFORE TRUNCATE ON credential_issuer_keys
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

REVOKE ALL ON credential_status_entries, credential_issuer_keys FROM PUBLIC;
-- The query service allocates status entries and records its signing key; it reads the
-- issuers' names for the credentials' achievements.
GRANT SELECT, INSERT ON credential_status_entries, credential_issuer_keys TO ll_query;
GRANT SELECT ON issuers TO ll_query;
GRANT SELECT ON credential_status_entries, credential_issuer_keys TO ll_admin;
