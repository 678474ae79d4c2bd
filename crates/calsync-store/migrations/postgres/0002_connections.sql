-- Calendar connections, OAuth authorization records (state) and the calendars of each connection.
-- Keep in step with migrations/sqlite/0002_connections.sql.

CREATE TABLE oauth_connections (
    id                  UUID PRIMARY KEY,
    firm_id             UUID NOT NULL,
    user_id             UUID NOT NULL,
    provider            TEXT NOT NULL CHECK (provider IN ('google', 'microsoft')),
    account_email       TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('active', 'expired', 'error', 'revoked')),
    status_message      TEXT NOT NULL,
    -- Sealed with the keyring (AES-256-GCM bound to firm, connection and column); NULL once wiped.
    access_token        TEXT,
    refresh_token       TEXT,
    token_expires_at    TIMESTAMPTZ,
    granted_scopes      TEXT NOT NULL,
    sync_enabled        BOOLEAN NOT NULL,
    sync_window_days    INTEGER NOT NULL CHECK (sync_window_days BETWEEN 7 AND 365),
    conflict_strategy   TEXT NOT NULL CHECK (conflict_strategy IN ('newest_wins', 'prefer_internal', 'prefer_external', 'manual')),
    delete_policy       TEXT NOT NULL CHECK (delete_policy IN ('propagate', 'keep')),
    last_sync_at        TIMESTAMPTZ,
    last_error          TEXT,
    next_sync_at        TIMESTAMPTZ,
    failure_count       INTEGER NOT NULL DEFAULT 0,
    -- Sync lease: which worker syncs this connection until when.
    lease_owner         TEXT,
    lease_until         TIMESTAMPTZ,
    -- Refresh lock: at most one token refresh per connection across all processes.
    refresh_owner       TEXT,
    refresh_until       TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    UNIQUE (id, firm_id),
    -- One connection per user per provider account; reconnecting updates it.
    UNIQUE (user_id, provider, account_email),
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
);
CREATE INDEX oauth_connections_firm ON oauth_connections (firm_id, user_id);

CREATE TABLE oauth_authorization_codes (
    id             UUID PRIMARY KEY,
    firm_id        UUID NOT NULL,
    user_id        UUID NOT NULL,
    provider       TEXT NOT NULL CHECK (provider IN ('google', 'microsoft')),
    -- SHA-256 of the state parameter; the state itself is never stored.
    state_hash     TEXT NOT NULL UNIQUE,
    pkce_verifier  TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    consumed_at    TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
);
CREATE INDEX oauth_authorization_codes_expires ON oauth_authorization_codes (expires_at);

CREATE TABLE synced_calendars (
    id                   UUID PRIMARY KEY,
    firm_id              UUID NOT NULL,
    connection_id        UUID NOT NULL,
    remote_id            TEXT NOT NULL,
    name                 TEXT NOT NULL,
    is_primary           BOOLEAN NOT NULL,
    can_write            BOOLEAN NOT NULL,
    time_zone            TEXT,
    selected             BOOLEAN NOT NULL,
    -- Google nextSyncToken, Graph deltaLink or CalDAV sync-token, and the window it was made for.
    sync_cursor          TEXT,
    cursor_window_start  TIMESTAMPTZ,
    cursor_window_end    TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (connection_id, remote_id),
    FOREIGN KEY (connection_id, firm_id) REFERENCES oauth_connections (id, firm_id) ON DELETE CASCADE
);
