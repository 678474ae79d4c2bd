-- Connections are matched on the provider's immutable account id (Google `sub`, Graph user
-- `id`); the address is kept for display and may change. Rows made before this migration get
-- their id at the next reconnect. Keep in step with migrations/sqlite/0004_connection_account_id.sql.
ALTER TABLE oauth_connections ADD COLUMN account_id TEXT;
CREATE UNIQUE INDEX oauth_connections_account_id ON oauth_connections (user_id, provider, account_id);
