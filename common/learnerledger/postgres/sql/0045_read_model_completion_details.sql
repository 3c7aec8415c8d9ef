-- What a transcript shows about each completion (issue 13, "partners and registrars see what
-- they need"): a credential's hours and basis, the issuer's grade, score and evidence URL, as
-- its credit_awarded entry records them; and the completions recorded without credit (failed,
-- pending, already credited), listed rather than only counted. The read model still holds
-- exactly the domain fold (TranscriptState); rows written before this migration have NULLs
-- and an empty list until `ledgerctl replay projections` rebuilds them from the log.
-- The new columns inherit the tables' grants (projector writes, query reads); the replay
-- builds its tables LIKE these, so it carries them too.
ALTER TABLE read_credentials
    ADD COLUMN notional_hours integer CHECK (notional_hours IS NULL OR notional_hours > 0),
    ADD COLUMN hours_basis    text,
    ADD COLUMN grade          text,
    ADD COLUMN score          double precision,
    ADD COLUMN evidence_url   text;

-- One JSON object per completion without credit (CompletionWithoutCredit.to_json), in
-- sequence order; a re-decision that credits one removes it.
ALTER TABLE read_transcripts
    ADD COLUMN without_credit jsonb NOT NULL DEFAULT '[]'::jsonb
        CHECK (jsonb_typeof(without_credit) = 'array');
