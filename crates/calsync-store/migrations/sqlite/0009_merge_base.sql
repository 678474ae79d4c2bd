-- Field-level merge: the content both sides agreed on at the last sync is kept with each link
-- (JSON of the appointment data; NULL for links stored before), attempts count merges, and a
-- conflict names the fields in conflict and keeps the base they diverged from.
-- Keep in step with migrations/postgres/0009_merge_base.sql.
ALTER TABLE event_links ADD COLUMN base_data TEXT;
ALTER TABLE sync_attempts ADD COLUMN merged INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_conflicts ADD COLUMN fields TEXT;
ALTER TABLE sync_conflicts ADD COLUMN base_data TEXT;
-- Per-field choices of a resolution ("title=internal time=external"); NULL when one side was kept whole.
ALTER TABLE sync_conflicts ADD COLUMN picks TEXT;
