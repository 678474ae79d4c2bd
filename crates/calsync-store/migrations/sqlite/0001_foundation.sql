-- Foundation: firms, users, API tokens, web sessions, appointments.
-- Keep in step with migrations/postgres/0001_foundation.sql. STRICT tables so a wrong type is an
-- error here as it is on PostgreSQL. UUIDs are 16-byte BLOBs and timestamps RFC 3339 TEXT in UTC
-- (sqlx's encodings), which compare in the same order as PostgreSQL's UUID and TIMESTAMPTZ.

CREATE TABLE firms (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    id             BLOB PRIMARY KEY,
    firm_id        BLOB NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('staff', 'admin')),
    password_hash  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (id, firm_id)
) STRICT;

CREATE TABLE api_tokens (
    id            BLOB PRIMARY KEY,
    firm_id       BLOB NOT NULL,
    user_id       BLOB NOT NULL,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    revoked_at    TEXT,
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
) STRICT;

CREATE TABLE web_sessions (
    id          BLOB PRIMARY KEY,
    firm_id     BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    csrf_token  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

CREATE TABLE appointments (
    id           BLOB PRIMARY KEY,
    firm_id      BLOB NOT NULL,
    owner_id     BLOB NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    location     TEXT NOT NULL,
    all_day      INTEGER NOT NULL CHECK (all_day IN (0, 1)),
    start_utc    TEXT NOT NULL,
    end_utc      TEXT NOT NULL,
    start_date   TEXT,
    end_date     TEXT,
    time_zone    TEXT NOT NULL,
    attendees    TEXT NOT NULL CHECK (json_valid(attendees)),
    status       TEXT NOT NULL CHECK (status IN ('confirmed', 'tentative', 'cancelled')),
    version      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    deleted_at   TEXT,
    FOREIGN KEY (owner_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE,
    CHECK (end_utc > start_utc),
    CHECK (all_day = (start_date IS NOT NULL AND end_date IS NOT NULL)),
    CHECK (version >= 1)
) STRICT;
CREATE INDEX appointments_owner_start ON appointments (firm_id, owner_id, start_utc, id) WHERE deleted_at IS NULL;
CREATE INDEX appointments_firm_start ON appointments (firm_id, start_utc, id) WHERE deleted_at IS NULL;
