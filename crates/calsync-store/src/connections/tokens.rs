//! A connection's tokens: opened from their sealed form, and the refresh lock that keeps one
//! refresh per connection at a time across processes (every write checks it still holds it).

use super::*;

impl Db {
    /// The connection's tokens, decrypted.
    pub async fn tokens(&self, keyring: &Keyring, firm: FirmId, id: ConnectionId) -> Result<Tokens, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Sealed {
            access_token: Option<String>,
            refresh_token: Option<String>,
            token_expires_at: Option<DateTime<Utc>>,
        }
        let row: Option<Sealed> = on_pool!(self, pool => {
            sqlx::query_as("SELECT access_token, refresh_token, token_expires_at FROM oauth_connections WHERE id = $1 AND firm_id = $2")
                .bind(id.as_uuid())
                .bind(firm.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        let Sealed { access_token: access, refresh_token: refresh, token_expires_at: expires_at } =
            row.ok_or(StoreError::NotFound)?;
        Ok(Tokens {
            access_token: access.map(|a| open(keyring, &a, &access_binding(firm, id))).transpose()?,
            refresh_token: refresh.map(|r| open(keyring, &r, &refresh_binding(firm, id))).transpose()?,
            expires_at,
        })
    }

    /// Takes the refresh lock for `owner` until `until`, unless another owner holds a live one.
    pub async fn try_lock_refresh(
        &self,
        firm: FirmId,
        id: ConnectionId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE oauth_connections SET refresh_owner = $1, refresh_until = $2 WHERE id = $3 AND firm_id = $4 \
                 AND (refresh_until IS NULL OR refresh_until < $5 OR refresh_owner = $1)",
            )
            .bind(owner)
            .bind(crate::micros(until))
            .bind(id.as_uuid())
            .bind(firm.as_uuid())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn release_refresh_lock(&self, firm: FirmId, id: ConnectionId, owner: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE oauth_connections SET refresh_owner = NULL, refresh_until = NULL WHERE id = $1 AND firm_id = $2 AND refresh_owner = $3",
            )
            .bind(id.as_uuid())
            .bind(firm.as_uuid())
            .bind(owner)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Stores refreshed tokens (a new refresh token replaces the old one; none keeps it), marks the
    /// connection active and releases the refresh lock, in one statement, but only while `owner`
    /// still holds the lock: a disconnect or reconnect meanwhile clears it, and must not be undone.
    /// Returns whether the tokens were stored.
    pub async fn store_refreshed_tokens(
        &self,
        keyring: &Keyring,
        firm: FirmId,
        id: ConnectionId,
        owner: &str,
        tokens: RefreshedTokens<'_>,
    ) -> Result<bool, StoreError> {
        let access = keyring.seal(tokens.access_token, &access_binding(firm, id));
        let refresh = tokens.refresh_token.map(|r| keyring.seal(r, &refresh_binding(firm, id)));
        let expires_at = tokens.expires_at;
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE oauth_connections SET access_token = $1, refresh_token = COALESCE($2, refresh_token), \
                 token_expires_at = $3, status = 'active', status_message = '', status_reason = NULL, last_error = NULL, \
                 refresh_owner = NULL, refresh_until = NULL, updated_at = $4 \
                 WHERE id = $5 AND firm_id = $6 AND refresh_owner = $7",
            )
            .bind(&access)
            .bind(&refresh)
            .bind(crate::micros(expires_at))
            .bind(self.now())
            .bind(id.as_uuid())
            .bind(firm.as_uuid())
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }
}
