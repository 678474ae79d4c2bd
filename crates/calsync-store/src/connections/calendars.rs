//! The calendars of a connection as last listed, with the user's selection.

use super::*;

impl Db {
    /// Makes the stored calendars match the provider's list. Existing selections are kept; on a
    /// connection with nothing selected, the primary calendar is selected.
    pub async fn replace_calendars(
        &self,
        firm: FirmId,
        id: ConnectionId,
        list: &[CalendarInfo],
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write_sql()).await?;
            replace_calendars_in!(&mut tx, firm, id, list, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The connection's calendars, primary first.
    pub async fn calendars(&self, firm: FirmId, id: ConnectionId) -> Result<Vec<SyncedCalendar>, StoreError> {
        let sql = format!(
            "SELECT {CALENDAR_COLUMNS} FROM synced_calendars c WHERE c.connection_id = $1 AND c.firm_id = $2 \
             ORDER BY c.is_primary DESC, c.name, c.remote_id"
        );
        let rows: Vec<CalendarRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(firm.as_uuid())
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(SyncedCalendar::from).collect())
    }
}
