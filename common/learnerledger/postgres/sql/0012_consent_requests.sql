-- Consent request ids (GrantConsent / RevokeConsent request_id). A consent event's id is derived
-- from the learner, the university, the action and the request id, so a grant and a revocation
-- can never collapse into one event. A request id names one request: sent again with the same
-- learner, university and action it is a retry (same event id); reused for anything else it is
-- refused as a conflict. Rows are only inserted.
CREATE TABLE consent_requests (
    request_id     text PRIMARY KEY CHECK (length(request_id) BETWEEN 1 AND 128),
    learner_id     text NOT NULL CHECK (learner_id ~ '^[0-9]{12}$'),
    university_id  text NOT NULL,
    action         text NOT NULL CHECK (action IN ('grant', 'revoke')),
    event_id       uuid NOT NULL UNIQUE,
    requested_at   timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT ON consent_requests TO ll_admin;
