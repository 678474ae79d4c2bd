-- Private appointments and free/busy: only their owner sees the details; calendars get Google
-- `visibility: private` / Graph `sensitivity: private`. Keep in step with the other backend's 0010.
ALTER TABLE appointments ADD COLUMN visibility TEXT NOT NULL DEFAULT 'default' CHECK (visibility IN ('default', 'private'));
-- Free/busy: Google `transparency`, Graph `showAs`.
ALTER TABLE appointments ADD COLUMN show_as TEXT NOT NULL DEFAULT 'busy' CHECK (show_as IN ('busy', 'free'));
