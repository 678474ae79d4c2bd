-- Why a connection is not active, typed (see calsync_domain::connection::StatusReason); NULL
-- while active. Keep in step with migrations/postgres/0005_connection_status_reason.sql.
ALTER TABLE oauth_connections ADD COLUMN status_reason TEXT;
