-- A calendar's colour as its provider gives it (#RRGGBB), for the pages and the API. Keep in
-- step with migrations/sqlite/0019_calendar_color.sql.
ALTER TABLE synced_calendars ADD COLUMN color TEXT;
