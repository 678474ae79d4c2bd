-- Writes to providers, recorded before the call: a crash or a lost answer between the provider
-- write and the local commit is resolved from here (by lookup of the idempotency key), never by
-- a second create. Keep in step with migrations/postgres/0007_outbox.sql.
CREATE TABLE outbox (
    id               BLOB PRIMARY KEY,
    firm_id          BLOB NOT NULL,
    connection_id    BLOB NOT NULL,
    calendar_id      BLOB NOT NULL REFERENCES synced_calendars (id) ON DELETE CASCADE,
    appointment_id   BLOB NOT NULL,
    operation        TEXT NOT NULL CHECK (operation IN ('create', 'update', 'delete')),
    -- Create: the key the provider dedupes on (Google event id / Graph transactionId).
    idempotency_key  TEXT NOT NULL,
    remote_id        TEXT,
    -- Update and delete: the etag the write is conditional on.
    expected_etag    TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    done_at          TEXT,
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX outbox_pending ON outbox (firm_id, connection_id, created_at) WHERE done_at IS NULL;
