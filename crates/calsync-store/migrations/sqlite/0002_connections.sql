-- Calendar connections, OAuth authorization records (state) and the calendars of each connection.
-- Keep in step with migrations/postgres/0002_connections.sql (STRICT; UUIDs as BLOB, times as TEXT).

CREATE TABLE oauth_connections (
    id                  BLOB PRIMARY KEY,
    firm_id             BLOB NOT NULL,
    user_id             BLOB NOT NULL,
    provider            TEXT NOT NULL CHECK (provider IN ('google', 'microsoft')),
    account_email       TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('active', 'expired', 'error', 'revoked')),
    status_message      TEXT NOT NULL,
    -- Sealed with the keyring (AES-256-GCM bound to firm, connection and column); NULL once wiped.
    access_token        TEXT,
    refresh_token       TEXT,
    token_expires_at    TEXT,
    granted_scopes      TEXT NOT NULL,
    sync_enabled        INTEGER NOT NULL CHECK (sync_enabled IN (0, 1)),
    sync_window_days    INTEGER NOT NULL CHECK (sync_window_days BETWEEN 7 AND 365),
    conflict_strategy   TEXT NOT NULL CHECK (conflict_strategy IN ('newest_wins', 'prefer_internal', 'prefer_external', 'manual')),
    delete_policy       TEXT NOT NULL CHECK (delete_policy IN ('propagate', 'keep')),
    last_sync_at        TEXT,
    last_error          TEXT,
    next_sync_at        TEXT,
    failure_count       INTEGER NOT NULL DEFAULT 0,
    -- Sync lease: which worker syncs this connection until when.
    lease_owner         TEXT,
    lease_until         TEXT,
    -- Refresh lock: at most one token refresh per connection across all processes.
    refresh_owner       TEXT,
    refresh_until       TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (id, firm_id),
    -- One connection per user per provider account; reconnecting updates it.
    UNIQUE (user_id, provider, account_email),
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX oauth_connections_firm ON oauth_connections (firm_id, user_id);

CREATE TABLE oauth_authorization_codes (
    id             BLOB PRIMARY KEY,
    firm_id        BLOB NOT NULL,
    user_id        BLOB NOT NULL,
    provider       TEXT NOT NULL CHECK (provider IN ('google', 'microsoft')),
    -- SHA-256 of the state parameter; the state itself is never stored.
    state_hash     TEXT NOT NULL UNIQUE,
    pkce_verifier  TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    consumed_at    TEXT,
    created_at     TEXT NOT NULL,
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX oauth_authorization_codes_expires ON oauth_authorization_codes (expires_at);

CREATE TABLE synced_calendars (
    id                   BLOB PRIMARY KEY,
    firm_id              BLOB NOT NULL,
    connection_id        BLOB NOT NULL,
    remote_id            TEXT NOT NULL,
    name                 TEXT NOT NULL,
    is_primary           INTEGER NOT NULL CHECK (is_primary IN (0, 1)),
    can_write            INTEGER NOT NULL CHECK (can_write IN (0, 1)),
    time_zone            TEXT,
    selected             INTEGER NOT NULL CHECK (selected IN (0, 1)),
    -- Google nextSyncToken, Graph deltaLink or CalDAV sync-token, and the window it was made for.
    sync_cursor          TEXT,
    cursor_window_start  TEXT,
    cursor_window_end    TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (connection_id, remote_id),
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
) STRICT;
