-- API tokens may expire. Keep in step with migrations/sqlite/0003_api_token_expiry.sql.
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMPTZ;
