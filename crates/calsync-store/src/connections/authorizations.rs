//! OAuth authorization records (the `state` of a flow): created with the PKCE verifier sealed,
//! consumed once, within their lifetime, by the user who started them.

use super::*;

impl Db {
    pub async fn create_authorization(
        &self,
        keyring: &Keyring,
        new: NewAuthorization,
    ) -> Result<AuthorizationId, StoreError> {
        let id = AuthorizationId::new();
        let sealed = keyring.seal(new.pkce_verifier.expose(), &verifier_binding(new.firm_id, id));
        let now = self.now();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Records are useless after their ten minutes; keep a day for diagnosis, then sweep.
            sqlx::query("DELETE FROM oauth_authorization_codes WHERE expires_at < $1")
                .bind(now - Duration::days(1))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO oauth_authorization_codes (id, firm_id, user_id, provider, state_hash, pkce_verifier, \
                 redirect_uri, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id.as_uuid())
            .bind(new.firm_id.as_uuid())
            .bind(new.user_id.as_uuid())
            .bind(new.provider.as_str())
            .bind(&new.state_hash)
            .bind(&sealed)
            .bind(&new.redirect_uri)
            .bind(crate::micros(new.expires_at))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "state"))?;
            tx.commit().await?;
        });
        Ok(id)
    }

    /// Uses up the authorization record for `state_hash` if it belongs to this user. A record is
    /// consumed at most once, whatever happens next, so a state can never be replayed.
    pub async fn consume_authorization(
        &self,
        keyring: &Keyring,
        state_hash: &str,
        firm: FirmId,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Result<Authorization, StateRejection>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Consumed {
            id: Uuid,
            provider: String,
            pkce_verifier: String,
            redirect_uri: String,
            expires_at: DateTime<Utc>,
        }
        let row: Option<Consumed> = on_pool!(self, pool => {
            sqlx::query_as(
                "UPDATE oauth_authorization_codes SET consumed_at = $1 \
                 WHERE state_hash = $2 AND firm_id = $3 AND user_id = $4 AND consumed_at IS NULL \
                 RETURNING id, provider, pkce_verifier, redirect_uri, expires_at",
            )
            .bind(now)
            .bind(state_hash)
            .bind(firm.as_uuid())
            .bind(user.as_uuid())
            .fetch_optional(pool)
            .await?
        });
        if let Some(r) = row {
            if r.expires_at <= now {
                return Ok(Err(StateRejection::Expired));
            }
            let id = AuthorizationId::from(r.id);
            return Ok(Ok(Authorization {
                id,
                provider: r
                    .provider
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("authorization provider: {e}")))?,
                pkce_verifier: open(keyring, &r.pkce_verifier, &verifier_binding(firm, id))?.into(),
                redirect_uri: r.redirect_uri,
            }));
        }
        let other: Option<(Uuid, Uuid, Option<DateTime<Utc>>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT firm_id, user_id, consumed_at FROM oauth_authorization_codes WHERE state_hash = $1")
                .bind(state_hash)
                .fetch_optional(pool)
                .await?
        });
        Ok(Err(match other {
            None => StateRejection::Unknown,
            Some((f, u, _)) if f != firm.as_uuid() || u != user.as_uuid() => StateRejection::OtherUser,
            Some(_) => StateRejection::Used,
        }))
    }
}
