//! Key rotation: every sealed value re-encrypted under the newest key, compare-and-swap.

use super::*;

impl Db {
    /// Re-encrypts every sealed value that uses an older key under the newest one. Each value is
    /// replaced only if it is still the one read, so a concurrent refresh is never overwritten.
    /// Returns how many values were re-encrypted.
    pub async fn rotate_keys(&self, keyring: &Keyring) -> Result<u64, StoreError> {
        let mut rotated = 0;
        let rows: Vec<(Uuid, Uuid, Option<String>, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, firm_id, access_token, refresh_token FROM oauth_connections").fetch_all(pool).await?
        });
        for (id, firm, access, refresh) in rows {
            let (id, firm) = (ConnectionId::from(id), FirmId::from(firm));
            for (column, value, binding) in [
                ("access_token", access, access_binding(firm, id)),
                ("refresh_token", refresh, refresh_binding(firm, id)),
            ] {
                let Some(old) = value.filter(|v| keyring.is_stale(v)) else { continue };
                let new = keyring.seal(&open(keyring, &old, &binding)?, &binding);
                let sql = format!("UPDATE oauth_connections SET {column} = $1 WHERE id = $2 AND {column} = $3");
                rotated += on_pool!(self, pool => {
                    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&new).bind(id.as_uuid()).bind(&old).execute(pool).await?.rows_affected()
                });
            }
        }
        let auths: Vec<(Uuid, Uuid, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, firm_id, pkce_verifier FROM oauth_authorization_codes WHERE consumed_at IS NULL")
                .fetch_all(pool)
                .await?
        });
        for (id, firm, old) in auths.into_iter().filter(|(_, _, v)| keyring.is_stale(v)) {
            let binding = verifier_binding(firm.into(), id.into());
            let new = keyring.seal(&open(keyring, &old, &binding)?, &binding);
            rotated += on_pool!(self, pool => {
                sqlx::query("UPDATE oauth_authorization_codes SET pkce_verifier = $1 WHERE id = $2 AND pkce_verifier = $3")
                    .bind(&new)
                    .bind(id)
                    .bind(&old)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
        }
        Ok(rotated)
    }
}
