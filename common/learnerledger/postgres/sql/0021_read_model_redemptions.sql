-- Redemption in the read model (issue 14): the read model holds exactly the domain fold, so each
-- credential row keeps where and when it was redeemed (NULL: not redeemed). A replay rebuilds
-- these columns from the credits_redeemed entries like everything else.
ALTER TABLE read_credentials
    ADD COLUMN redeemed_by_sequence   bigint,
    ADD COLUMN redeemed_at            timestamptz,
    ADD COLUMN redeemed_university_id text,
    ADD COLUMN redeemed_programme_id  text,
    ADD COLUMN redemption_id          text;
