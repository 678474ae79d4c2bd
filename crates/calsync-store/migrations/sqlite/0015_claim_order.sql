-- The workers' claim in the order it takes connections (`ORDER BY next_sync_at, id`): read from
-- the index in order, stopping after the first free ones, without a sort.
-- Keep in step with the other backend's 0015.
DROP INDEX oauth_connections_due;
CREATE INDEX oauth_connections_due ON oauth_connections (next_sync_at, id) WHERE sync_enabled;
