-- The workers' claim in the order it takes connections (`ORDER BY next_sync_at, id`), so that
-- it reads the index in order and stops after the first free ones, instead of collecting every
-- due entry (live or left dead by the syncs just done) and sorting them.
-- Keep in step with the other backend's 0015.
DROP INDEX oauth_connections_due;
CREATE INDEX oauth_connections_due ON oauth_connections (next_sync_at, id) WHERE sync_enabled;
-- Room in each page for the row's next version: a lease taken or given back changes no indexed
-- column and can then be updated in place (HOT) instead of in a new page with new index entries.
-- Vacuumed sooner than the default 20%: every sync updates its connection's row.
ALTER TABLE oauth_connections SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05);
