-- What the sync engine keeps beyond links, attempts and the outbox. Keep in step with
-- migrations/postgres/0008_sync_engine.sql (STRICT; UUIDs as BLOB, times as TEXT).

-- Where an appointment came from: NULL for one made in calsync (pushed to the connections'
-- calendars), else the connection and calendar it was imported from. No foreign keys: an
-- imported appointment outlives its connection, and must still not be taken for calsync's own.
ALTER TABLE appointments ADD COLUMN origin_connection_id BLOB;
ALTER TABLE appointments ADD COLUMN origin_calendar_id BLOB
    CHECK ((origin_connection_id IS NULL) = (origin_calendar_id IS NULL));

-- The remote id of the calendar calsync creates new appointments in; NULL means the primary.
ALTER TABLE oauth_connections ADD COLUMN push_calendar TEXT;

-- Conflicts left for a person to decide (the manual strategy): both sides' content as JSON of
-- AppointmentData, and which side was kept once resolved. At most one open conflict per link.
CREATE TABLE sync_conflicts (
    id                 BLOB PRIMARY KEY,
    firm_id            BLOB NOT NULL,
    connection_id      BLOB NOT NULL,
    calendar_id        BLOB NOT NULL REFERENCES synced_calendars (id) ON DELETE CASCADE,
    link_id            BLOB NOT NULL REFERENCES event_links (id) ON DELETE CASCADE,
    appointment_id     BLOB NOT NULL,
    local_data         TEXT NOT NULL CHECK (json_valid(local_data)),
    remote_data        TEXT NOT NULL CHECK (json_valid(remote_data)),
    remote_etag        TEXT NOT NULL,
    remote_updated_at  TEXT,
    created_at         TEXT NOT NULL,
    resolved_at        TEXT,
    resolution         TEXT CHECK (resolution IN ('internal', 'external')),
    CHECK ((resolved_at IS NULL) = (resolution IS NULL)),
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
) STRICT;
CREATE UNIQUE INDEX sync_conflicts_open_link ON sync_conflicts (link_id) WHERE resolved_at IS NULL;
CREATE INDEX sync_conflicts_open ON sync_conflicts (firm_id, created_at) WHERE resolved_at IS NULL;

-- Deletions the mass-delete guard held back until a person releases them. side 'local': the
-- remote event is gone and the engine wanted to delete the calsync appointment; 'remote': the
-- appointment was deleted in calsync and the engine wanted to delete the remote event.
CREATE TABLE held_deletes (
    id             BLOB PRIMARY KEY,
    firm_id        BLOB NOT NULL,
    connection_id  BLOB NOT NULL,
    calendar_id    BLOB NOT NULL REFERENCES synced_calendars (id) ON DELETE CASCADE,
    link_id        BLOB NOT NULL UNIQUE REFERENCES event_links (id) ON DELETE CASCADE,
    side           TEXT NOT NULL CHECK (side IN ('local', 'remote')),
    created_at     TEXT NOT NULL,
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX held_deletes_connection ON held_deletes (firm_id, connection_id, created_at);

-- The attempt log filtered by status (and the running attempts a crash left behind), and the
-- firm-wide log paged newest first.
CREATE INDEX sync_attempts_status ON sync_attempts (firm_id, status, started_at);
CREATE INDEX sync_attempts_firm ON sync_attempts (firm_id, started_at, id);
