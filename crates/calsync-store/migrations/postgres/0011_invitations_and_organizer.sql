-- Attendees without invitation spam, and invitations organised by someone else. Keep in step with
-- the other backend's 0011.
-- Whether pushing the appointment may e-mail its attendees (Google sendUpdates=all; on Graph the
-- attendees become real attendees rather than a list in the body).
ALTER TABLE appointments ADD COLUMN send_invitations BOOLEAN NOT NULL DEFAULT FALSE;
-- The organizer's e-mail when someone else organises it: its organizer-owned fields are read-only.
ALTER TABLE appointments ADD COLUMN organizer TEXT NULL;
