-- Push channels: a Google events.watch channel or a Graph subscription per watched calendar.
-- Keep in step with the other backend's 0014.
CREATE TABLE webhook_channels (
    -- calsync's id; the Google channel id.
    id             BLOB PRIMARY KEY,
    firm_id        BLOB NOT NULL,
    connection_id  BLOB NOT NULL,
    calendar_id    BLOB NOT NULL REFERENCES synced_calendars (id) ON DELETE CASCADE,
    provider       TEXT NOT NULL CHECK (provider IN ('google', 'microsoft')),
    -- Google resourceId (needed to stop the channel); Graph subscription id.
    remote_id      TEXT NOT NULL,
    -- SHA-256 (hex) of the channel token / clientState: deliveries are checked against it, the
    -- secret itself is never stored.
    secret_hash    TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    -- Graph paused its notifications (reauthorizationRequired): reauthorize at the next sync.
    needs_reauthorization INTEGER NOT NULL DEFAULT 0 CHECK (needs_reauthorization IN (0, 1)),
    last_delivery_at TEXT,
    deliveries     INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX webhook_channels_connection ON webhook_channels (firm_id, connection_id);
CREATE UNIQUE INDEX webhook_channels_remote ON webhook_channels (provider, remote_id);
