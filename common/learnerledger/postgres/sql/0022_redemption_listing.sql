-- ListRedemptions (issue 14): a university's (or every) redemption in request order, by learner
-- or by programme, with its decision (the entry whose source_event_id is the request's event id)
-- or its rejection. Indexes only; no new privileges (the admin role already reads all of it).
CREATE INDEX redemption_requests_in_order
    ON redemption_requests (requested_at, university_id, redemption_id);
CREATE INDEX redemption_requests_by_learner
    ON redemption_requests (learner_id, requested_at, university_id, redemption_id);
CREATE INDEX redemption_requests_by_programme
    ON redemption_requests (programme_id, requested_at, university_id, redemption_id);
-- The redemption a rejection belongs to (GetRedemption / ListRedemptions: REJECTED).
CREATE INDEX rejections_by_source_event ON rejections (source_event_id)
    WHERE source_event_id IS NOT NULL;
-- Which credentials a credits_redeemed entry redeemed (revoked after redemption).
CREATE INDEX redeemed_credentials_by_redemption
    ON redeemed_credentials (learner_id, redemption_sequence);
