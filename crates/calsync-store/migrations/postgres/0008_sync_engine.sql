-- What the sync engine keeps beyond links, attempts and the outbox. Keep in step with
-- migrations/sqlite/0008_sync_engine.sql.

-- Where an appointment came from: NULL for one made in calsync (pushed to the connections'
-- calendars), else the connection and calendar it was imported from. No foreign keys: an
-- imported appointment outlives its connection, and must still not be taken for calsync's own.
ALTER TABLE appointments ADD COLUMN origin_connection_id UUID;
ALTER TABLE appointments ADD COLUMN origin_calendar_id UUID
    CHECK ((origin_connection_id IS NULL) = (origin_calendar_id IS NULL));

-- The remote id of the calendar calsync creates new appointments in; NULL means the primary.
ALTER TABLE oauth_connections ADD COLUMN push_calendar TEXT;

-- Conflicts left for a person to decide (the manual strategy): both sides' content as JSON of
-- AppointmentData, and which side was kept once resolved. At most one open conflict per link.
CREATE TABLE sync_conflicts (
    id                 UUID PRIMARY KEY,
    firm_id            UUID NOT NULL,
    connection_id      UUID NOT NULL,
    calendar_id        UUID NOT NULL REFERENCES synced_calendars (id) ON DELETE CASCADE,
    link_id            UUID NOT NULL REFERENCES event_links (id) ON DELETE CASCADE,
    appointment_id     UUID NOT NULL,
    -- The casts refuse text that is not JSON (`IS JSON` needs PostgreSQL 16).
    local_data         TEXT NOT NULL CHECK (local_data::jsonb IS NOT NULL),
    remote_data        TEXT NOT NULL CHECK (remote_data::jsonb IS NOT NULL),
    remote_etag        TEXT NOT NULL,
    remote_updated_at  TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    resolved_at        TIMESTAMPTZ,
    resolution         TEXT CHECK (resolution IN ('internal', 'external')),
    CHECK ((resolved_at IS NULL) = (resolution IS NULL)),
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX sync_conflicts_open_link ON sync_conflicts (link_id) WHERE resolved_at IS NULL;
CREATE INDEX sync_conflicts_open ON sync_conflicts (firm_id, created_at) WHERE resolved_at IS NULL;

-- Deletions the mass-delete guard held back until a person releases them. side 'local': the
-- remote event is gone and the engine wanted to delete the calsync appointment; 'remote': the
-- appointment was deleted in calsync and the engine wanted to delete the remote event.
CREATE TABLE held_deletes (
    id             UUID PRIMARY KEY,
    firm_id        UUID NOT NULL,
    connection_id  UUID NOT NULL,
    calendar_id    UUID NOT NULL REFERENCES synced_calendars (id) ON DELETE CASCADE,
    link_id        UUID NOT NULL UNIQUE REFERENCES event_links (id) ON DELETE CASCADE,
    side           TEXT NOT NULL CHECK (side IN ('local', 'remote')),
    created_at     TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
);
CREATE INDEX held_deletes_connection ON held_deletes (firm_id, connection_id, created_at);

-- The attempt log filtered by status (and the running attempts a crash left behind), and the
-- firm-wide log paged newest first.
CREATE INDEX sync_attempts_status ON sync_attempts (firm_id, status, started_at);
CREATE INDEX sync_attempts_firm ON sync_attempts (firm_id, started_at, id);
