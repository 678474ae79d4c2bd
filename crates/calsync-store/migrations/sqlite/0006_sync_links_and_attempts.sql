-- The sync engine's memory. event_links: one appointment <-> remote event pair per calendar,
-- with the three-way base (what each side looked like at the last sync). sync_attempts: the log
-- of every sync. Keep in step with migrations/postgres/0006_sync_links_and_attempts.sql.

CREATE TABLE event_links (
    id                 BLOB PRIMARY KEY,
    firm_id            BLOB NOT NULL,
    connection_id      BLOB NOT NULL,
    calendar_id        BLOB NOT NULL REFERENCES synced_calendars (id) ON DELETE CASCADE,
    appointment_id     BLOB NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    remote_id          TEXT NOT NULL,
    -- The base: the provider's etag and content hash, and calsync's version and content hash.
    remote_etag        TEXT NOT NULL,
    remote_hash        TEXT NOT NULL,
    remote_updated_at  TEXT,
    local_version      INTEGER NOT NULL,
    local_hash         TEXT NOT NULL,
    -- Occurrences and exceptions of a series: the master's remote id and the original start.
    series_remote_id   TEXT,
    original_start     TEXT,
    state              TEXT NOT NULL CHECK (state IN ('synced', 'pending', 'conflict', 'error')),
    last_error         TEXT,
    synced_at          TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    UNIQUE (calendar_id, remote_id),
    UNIQUE (calendar_id, appointment_id),
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX event_links_appointment ON event_links (firm_id, appointment_id);

CREATE TABLE sync_attempts (
    id              BLOB PRIMARY KEY,
    firm_id         BLOB NOT NULL,
    connection_id   BLOB NOT NULL,
    triggered_by    TEXT NOT NULL CHECK (triggered_by IN ('manual', 'scheduled', 'webhook', 'replay', 'resync')),
    status          TEXT NOT NULL CHECK (status IN ('running', 'success', 'partial', 'failed')),
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    pulled_created  INTEGER NOT NULL DEFAULT 0,
    pulled_updated  INTEGER NOT NULL DEFAULT 0,
    pulled_deleted  INTEGER NOT NULL DEFAULT 0,
    pushed_created  INTEGER NOT NULL DEFAULT 0,
    pushed_updated  INTEGER NOT NULL DEFAULT 0,
    pushed_deleted  INTEGER NOT NULL DEFAULT 0,
    conflicts       INTEGER NOT NULL DEFAULT 0,
    requests        INTEGER NOT NULL DEFAULT 0,
    error_kind      TEXT,
    error_message   TEXT,
    replay_of       BLOB REFERENCES sync_attempts (id),
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX sync_attempts_connection ON sync_attempts (firm_id, connection_id, started_at);
