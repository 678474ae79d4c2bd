-- A user's ICS feed: the URL `/ics/{token}.ics` that calendar apps subscribe to. One per user;
-- regenerating replaces the token, revoking deletes the row. Only the token's SHA-256 is kept.
-- Keep in step with the other backend's 0016.
CREATE TABLE ics_feeds (
    user_id     BLOB PRIMARY KEY,
    firm_id     BLOB NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
) STRICT;
