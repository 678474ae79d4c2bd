-- Foundation: firms, users, API tokens, web sessions, appointments.
-- Keep in step with migrations/sqlite/0001_foundation.sql (same tables, columns and constraints).

CREATE TABLE firms (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    firm_id        UUID NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('staff', 'admin')),
    password_hash  TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    -- Target of the composite foreign keys below: a row that names a user also names the user's firm.
    UNIQUE (id, firm_id)
);

CREATE TABLE api_tokens (
    id            UUID PRIMARY KEY,
    firm_id       UUID NOT NULL,
    user_id       UUID NOT NULL,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
);

CREATE TABLE web_sessions (
    id          UUID PRIMARY KEY,
    firm_id     UUID NOT NULL,
    user_id     UUID NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    csrf_token  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

CREATE TABLE appointments (
    id           UUID PRIMARY KEY,
    firm_id      UUID NOT NULL,
    owner_id     UUID NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    location     TEXT NOT NULL,
    all_day      BOOLEAN NOT NULL,
    -- The UTC span, for range searches; all-day spans are derived from the dates in time_zone.
    start_utc    TIMESTAMPTZ NOT NULL,
    end_utc      TIMESTAMPTZ NOT NULL,
    -- Set exactly when all_day: the dates themselves, end exclusive.
    start_date   DATE,
    end_date     DATE,
    time_zone    TEXT NOT NULL,
    attendees    JSONB NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('confirmed', 'tentative', 'cancelled')),
    version      BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    -- Tombstone: deletions must reach the external calendars, so the row outlives the appointment.
    deleted_at   TIMESTAMPTZ,
    FOREIGN KEY (owner_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE,
    CHECK (end_utc > start_utc),
    CHECK (all_day = (start_date IS NOT NULL AND end_date IS NOT NULL)),
    CHECK (version >= 1)
);
CREATE INDEX appointments_owner_start ON appointments (firm_id, owner_id, start_utc, id) WHERE deleted_at IS NULL;
CREATE INDEX appointments_firm_start ON appointments (firm_id, start_utc, id) WHERE deleted_at IS NULL;
