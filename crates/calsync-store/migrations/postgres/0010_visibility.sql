-- Private appointments: only their owner sees the details; calendars get Google
-- `visibility: private` / Graph `sensitivity: private`. Keep in step with the other backend's 0010.
ALTER TABLE appointments ADD COLUMN visibility TEXT NOT NULL DEFAULT 'default' CHECK (visibility IN ('default', 'private'));
