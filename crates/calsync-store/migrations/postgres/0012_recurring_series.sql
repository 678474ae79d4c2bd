-- Recurring series: a master's RFC 5545 lines, and exceptions that name their master and the
-- occurrence they replace. Keep in step with the other backend's 0012.
ALTER TABLE appointments ADD COLUMN recurrence JSONB NOT NULL DEFAULT '[]';
ALTER TABLE appointments ADD COLUMN series_id UUID NULL REFERENCES appointments (id) ON DELETE CASCADE;
-- `2027-03-22T09:00:00Z`, or `2027-03-22` for all-day series.
ALTER TABLE appointments ADD COLUMN original_start TEXT NULL;
-- When a master's last occurrence ends (a far-future value for endless series); NULL otherwise.
-- Range queries take it over end_utc, so a series is found in every window it reaches.
ALTER TABLE appointments ADD COLUMN series_end_utc TIMESTAMPTZ NULL;
ALTER TABLE appointments ADD CONSTRAINT appointments_exception_whole
    CHECK ((series_id IS NULL) = (original_start IS NULL));
CREATE UNIQUE INDEX appointments_one_exception ON appointments (series_id, original_start) WHERE deleted_at IS NULL;
-- Made in calsync for the calendar it names as origin (the rest of a series pulled from there,
-- split off with "this and following"): the next sync creates it there. Other appointments with
-- an origin came from their calendar, or were kept after it deleted them, and are never sent.
ALTER TABLE appointments ADD COLUMN push_origin BOOLEAN NOT NULL DEFAULT FALSE;
-- What a sync noticed without failing: e.g. an Outlook time zone calsync could not map, read as
-- UTC. A JSON array of sentences.
ALTER TABLE sync_attempts ADD COLUMN notes TEXT NOT NULL DEFAULT '[]';
