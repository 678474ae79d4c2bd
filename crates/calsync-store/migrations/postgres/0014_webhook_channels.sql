-- Push channels: a Google events.watch channel or a Graph subscription per watched calendar.
-- Keep in step with the other backend's 0014.
CREATE TABLE webhook_channels (
    -- calsync's id; the Google channel id.
    id             UUID PRIMARY KEY,
    firm_id        UUID NOT NULL,
    connection_id  UUID NOT NULL,
    calendar_id    UUID NOT NULL REFERENCES synced_calendars (id) ON DELETE CASCADE,
    provider       TEXT NOT NULL CHECK (provider IN ('google', 'microsoft')),
    -- Google resourceId (needed to stop the channel); Graph subscription id.
    remote_id      TEXT NOT NULL,
    -- SHA-256 (hex) of the channel token / clientState: deliveries are checked against it, the
    -- secret itself is never stored.
    secret_hash    TEXT NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    -- Graph paused its notifications (reauthorizationRequired): reauthorize at the next sync.
    needs_reauthorization BOOLEAN NOT NULL DEFAULT FALSE,
    last_delivery_at TIMESTAMPTZ,
    deliveries     BIGINT NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
);
CREATE INDEX webhook_channels_connection ON webhook_channels (firm_id, connection_id);
-- A Graph subscription id names one channel (deliveries are looked up by it); a Google resourceId
-- names the watched calendar, which several channels may share (a replacement overlaps the old).
CREATE UNIQUE INDEX webhook_channels_remote ON webhook_channels (remote_id) WHERE provider = 'microsoft';
-- A delivery that came while the connection was being synced: the sync may have listed its
-- calendars before the change, so the connection is due again as soon as that sync ends.
ALTER TABLE oauth_connections ADD COLUMN due_again BOOLEAN NOT NULL DEFAULT FALSE;
