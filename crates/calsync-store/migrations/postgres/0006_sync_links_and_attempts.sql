-- The sync engine's memory. event_links: one appointment <-> remote event pair per calendar,
-- with the three-way base (what each side looked like at the last sync). sync_attempts: the log
-- of every sync. Keep in step with migrations/sqlite/0006_sync_links_and_attempts.sql.

CREATE TABLE event_links (
    id                 UUID PRIMARY KEY,
    firm_id            UUID NOT NULL,
    connection_id      UUID NOT NULL,
    calendar_id        UUID NOT NULL REFERENCES synced_calendars (id) ON DELETE CASCADE,
    appointment_id     UUID NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    remote_id          TEXT NOT NULL,
    -- The base: the provider's etag and content hash, and calsync's version and content hash.
    remote_etag        TEXT NOT NULL,
    remote_hash        TEXT NOT NULL,
    remote_updated_at  TIMESTAMPTZ,
    local_version      BIGINT NOT NULL,
    local_hash         TEXT NOT NULL,
    -- Occurrences and exceptions of a series: the master's remote id and the original start.
    series_remote_id   TEXT,
    original_start     TIMESTAMPTZ,
    state              TEXT NOT NULL CHECK (state IN ('synced', 'pending', 'conflict', 'error')),
    last_error         TEXT,
    synced_at          TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    UNIQUE (calendar_id, remote_id),
    UNIQUE (calendar_id, appointment_id),
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
);
CREATE INDEX event_links_appointment ON event_links (firm_id, appointment_id);

CREATE TABLE sync_attempts (
    id              UUID PRIMARY KEY,
    firm_id         UUID NOT NULL,
    connection_id   UUID NOT NULL,
    triggered_by    TEXT NOT NULL CHECK (triggered_by IN ('manual', 'scheduled', 'webhook', 'replay', 'resync')),
    status          TEXT NOT NULL CHECK (status IN ('running', 'success', 'partial', 'failed')),
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    pulled_created  BIGINT NOT NULL DEFAULT 0,
    pulled_updated  BIGINT NOT NULL DEFAULT 0,
    pulled_deleted  BIGINT NOT NULL DEFAULT 0,
    pushed_created  BIGINT NOT NULL DEFAULT 0,
    pushed_updated  BIGINT NOT NULL DEFAULT 0,
    pushed_deleted  BIGINT NOT NULL DEFAULT 0,
    conflicts       BIGINT NOT NULL DEFAULT 0,
    requests        BIGINT NOT NULL DEFAULT 0,
    error_kind      TEXT,
    error_message   TEXT,
    replay_of       UUID REFERENCES sync_attempts (id),
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
);
CREATE INDEX sync_attempts_connection ON sync_attempts (firm_id, connection_id, started_at);
