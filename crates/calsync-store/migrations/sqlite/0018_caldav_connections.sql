-- no-transaction
-- CalDAV connections (provider 'caldav'): a server, a user name and an app-specific password,
-- sealed in access_token like OAuth tokens; token_expires_at stays NULL (a password does not
-- expire). A connection is one per account id (the CalDAV principal), no longer one per
-- address: the same address may sign in to iCloud and to Fastmail. Keep in step with
-- migrations/postgres/0018_caldav_connections.sql.
--
-- SQLite cannot change a CHECK constraint: the table is rebuilt (https://sqlite.org/lang_altertable.html,
-- "making other kinds of table schema changes"), with foreign keys off so the tables that refer
-- to it keep their rows and, after the rename, refer to the new table.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE oauth_connections_new (
    id                  BLOB PRIMARY KEY,
    firm_id             BLOB NOT NULL,
    user_id             BLOB NOT NULL,
    provider            TEXT NOT NULL CHECK (provider IN ('google', 'microsoft', 'caldav')),
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
    account_id          TEXT,
    status_reason       TEXT,
    push_calendar       TEXT,
    lease_taken_from    TEXT,
    due_again           INTEGER NOT NULL DEFAULT 0 CHECK (due_again IN (0, 1)),
    UNIQUE (id, firm_id),
    -- One connection per user per provider account (oauth_connections_account_id below); the
    -- address is no longer unique: one address may sign in to two CalDAV servers.
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
) STRICT;
INSERT INTO oauth_connections_new SELECT * FROM oauth_connections;
DROP TABLE oauth_connections;
ALTER TABLE oauth_connections_new RENAME TO oauth_connections;
CREATE INDEX oauth_connections_firm ON oauth_connections (firm_id, user_id);
CREATE UNIQUE INDEX oauth_connections_account_id ON oauth_connections (user_id, provider, account_id);
CREATE INDEX oauth_connections_due ON oauth_connections (next_sync_at, id) WHERE sync_enabled;
COMMIT;
PRAGMA foreign_keys = ON;
