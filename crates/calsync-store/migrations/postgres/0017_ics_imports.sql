-- Which appointment each imported iCalendar UID became, per user: importing the same file again
-- updates those appointments instead of adding copies. Keep in step with the other backend's 0017.
CREATE TABLE ics_imports (
    firm_id         UUID NOT NULL,
    user_id         UUID NOT NULL,
    uid             TEXT NOT NULL,
    appointment_id  UUID NOT NULL,
    PRIMARY KEY (user_id, uid),
    FOREIGN KEY (user_id, firm_id) REFERENCES users (id, firm_id) ON DELETE CASCADE
);
