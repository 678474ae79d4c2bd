-- Background sync. Keep in step with the other backend's 0013.
-- The holder a worker took a connection's lease over from (its lease had run out: the holder
-- died), as the claim found it; NULL when the lease was free. Counted as lease takeovers.
ALTER TABLE oauth_connections ADD COLUMN lease_taken_from TEXT;
-- Which worker (process instance) ran each attempt.
ALTER TABLE sync_attempts ADD COLUMN worker TEXT;
-- The workers' claim: enabled connections by when they are due.
CREATE INDEX oauth_connections_due ON oauth_connections (next_sync_at) WHERE sync_enabled;
-- How long each finished attempt took, in milliseconds (for the statistics' percentiles).
ALTER TABLE sync_attempts ADD COLUMN duration_ms INTEGER;
CREATE INDEX sync_attempts_duration ON sync_attempts (firm_id, started_at, duration_ms);
