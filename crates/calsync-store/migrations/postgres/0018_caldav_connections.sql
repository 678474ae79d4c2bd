-- CalDAV connections (provider 'caldav'): a server, a user name and an app-specific password,
-- sealed in access_token like OAuth tokens; token_expires_at stays NULL (a password does not
-- expire). A connection is one per account id (the CalDAV principal), no longer one per
-- address: the same address may sign in to iCloud and to Fastmail. Keep in step with
-- migrations/sqlite/0018_caldav_connections.sql.
ALTER TABLE oauth_connections DROP CONSTRAINT oauth_connections_provider_check;
ALTER TABLE oauth_connections ADD CONSTRAINT oauth_connections_provider_check
    CHECK (provider IN ('google', 'microsoft', 'caldav'));
ALTER TABLE oauth_connections DROP CONSTRAINT oauth_connections_user_id_provider_account_email_key;
