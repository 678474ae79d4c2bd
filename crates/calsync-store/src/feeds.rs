//! ICS feeds: one secret URL per user (`/ics/{token}.ics`) that calendar apps subscribe to.
//! Only the token's hash is stored; regenerating replaces it, revoking forgets it.

use calsync_domain::ids::{AppointmentId, FirmId, UserId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Db, StoreError, on_pool};

impl Db {
    /// Sets the user's feed token (by its hash), replacing any earlier one.
    pub async fn set_ics_feed(&self, firm: FirmId, user: UserId, token_hash: &str) -> Result<(), StoreError> {
        let now = self.now();
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO ics_feeds (user_id, firm_id, token_hash, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id) DO UPDATE SET token_hash = EXCLUDED.token_hash, created_at = EXCLUDED.created_at",
            )
            .bind(user.as_uuid())
            .bind(firm.as_uuid())
            .bind(token_hash)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| StoreError::unique(e, "token"))?;
        });
        Ok(())
    }

    /// Forgets the user's feed token: its URL answers 404 from now on. `false` when there was none.
    pub async fn revoke_ics_feed(&self, firm: FirmId, user: UserId) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query("DELETE FROM ics_feeds WHERE firm_id = $1 AND user_id = $2")
                .bind(firm.as_uuid())
                .bind(user.as_uuid())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// When the user's current feed token was made, if there is one.
    pub async fn ics_feed_created(&self, firm: FirmId, user: UserId) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row: Option<(DateTime<Utc>,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT created_at FROM ics_feeds WHERE firm_id = $1 AND user_id = $2")
                .bind(firm.as_uuid())
                .bind(user.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(t,)| t))
    }

    /// Whose feed a token (by its hash) opens: the firm, the user and the user's name.
    pub async fn ics_feed_owner(&self, token_hash: &str) -> Result<(FirmId, UserId, String), StoreError> {
        let row: Option<(Uuid, Uuid, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT f.firm_id, f.user_id, u.name FROM ics_feeds f \
                 JOIN users u ON u.id = f.user_id AND u.firm_id = f.firm_id WHERE f.token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(f, u, name)| (FirmId(f), UserId(u), name)).ok_or(StoreError::NotFound)
    }

    /// The appointment an imported UID became for this user, if it was imported before.
    pub async fn imported_as(
        &self,
        firm: FirmId,
        user: UserId,
        uid: &str,
    ) -> Result<Option<AppointmentId>, StoreError> {
        let row: Option<(Uuid,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT appointment_id FROM ics_imports WHERE firm_id = $1 AND user_id = $2 AND uid = $3")
                .bind(firm.as_uuid())
                .bind(user.as_uuid())
                .bind(uid)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(a,)| AppointmentId(a)))
    }

    /// A new appointment made from an imported event and the record of its UID, together or not
    /// at all: an import cut short in between never leaves an appointment a re-import would copy.
    pub async fn insert_imported_appointment(
        &self,
        firm: FirmId,
        owner: UserId,
        uid: &str,
        data: calsync_domain::appointment::AppointmentData,
    ) -> Result<calsync_domain::appointment::Appointment, StoreError> {
        let now = self.now();
        let a = calsync_domain::appointment::Appointment {
            id: AppointmentId::new(),
            firm_id: firm,
            owner_id: owner,
            data,
            origin: calsync_domain::appointment::Origin::Calsync,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            crate::appointments::insert_appointment_query!(&a)
                .execute(&mut *tx)
                .await
                .map_err(crate::appointments::owner_not_in_firm)?;
            sqlx::query(
                "INSERT INTO ics_imports (firm_id, user_id, uid, appointment_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, uid) DO UPDATE SET appointment_id = EXCLUDED.appointment_id",
            )
            .bind(firm.as_uuid())
            .bind(owner.as_uuid())
            .bind(uid)
            .bind(a.id.as_uuid())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(a)
    }
}
