//! Connections, authorization records and calendars, on SQLite and PostgreSQL.

use calsync_domain::account::{Email, FirmSlug};
use calsync_domain::connection::{ConflictStrategy, ConnectionStatus, Provider, StatusReason, SyncWindowDays};
use calsync_domain::ids::{ConnectionId, FirmId};
use calsync_domain::tenant::Role;
use calsync_store::crypto::Keyring;
use calsync_store::{
    CalendarInfo, Db, NewAuthorization, NewGrant, NewUser, RefreshedTokens, SettingsChange, StateRejection, User,
};
use calsync_testkit::{Backend, TestDb, backend_tests};
use chrono::{Duration, Utc};

async fn user(db: &Db, slug: &str, email: &str) -> User {
    let firm = match db.firm_by_slug(slug).await {
        Ok(f) => f,
        Err(_) => db.create_firm("Firm", &FirmSlug::parse(slug).unwrap()).await.unwrap(),
    };
    db.create_user(NewUser {
        firm_id: firm.id,
        email: Email::parse(email).unwrap(),
        name: "U".into(),
        role: Role::Staff,
        password_hash: "h".into(),
    })
    .await
    .unwrap()
}

fn keyring() -> Keyring {
    Keyring::parse(&Keyring::generate_spec("k1")).unwrap()
}

fn grant(u: &User, access: &str, refresh: Option<&str>) -> NewGrant {
    NewGrant {
        firm_id: u.firm_id,
        user_id: u.id,
        provider: Provider::Google,
        account_id: "104455667788990011223".into(),
        account_email: "ann@gmail.test".into(),
        access_token: access.into(),
        refresh_token: refresh.map(Into::into),
        expires_at: Some(Utc::now() + Duration::hours(1)),
        scopes: vec!["openid".into(), "calendar".into()],
    }
}

fn authorization(u: &User, state_hash: &str, expires_in: Duration) -> NewAuthorization {
    NewAuthorization {
        firm_id: u.firm_id,
        user_id: u.id,
        provider: Provider::Microsoft,
        state_hash: state_hash.into(),
        pkce_verifier: "verifier-secret".into(),
        redirect_uri: "http://127.0.0.1:8080/calendar/oauth/callback".into(),
        expires_at: Utc::now() + expires_in,
    }
}

async fn authorization_records_are_single_use(backend: Backend) {
    let t = TestDb::new(backend).await;
    let (db, k) = (&t.db, keyring());
    let ann = user(db, "acme", "ann@acme.test").await;
    let bob = user(db, "acme", "bob@acme.test").await;
    db.create_authorization(&k, authorization(&ann, "h1", Duration::minutes(10))).await.unwrap();
    db.create_authorization(&k, authorization(&ann, "h2", Duration::seconds(-1))).await.unwrap();

    let other = db.consume_authorization(&k, "h1", bob.firm_id, bob.id, Utc::now()).await.unwrap();
    assert_eq!(other.unwrap_err(), StateRejection::OtherUser);
    let ok =
        db.consume_authorization(&k, "h1", ann.firm_id, ann.id, Utc::now()).await.unwrap().expect("owner consumes it");
    assert_eq!((ok.provider, ok.pkce_verifier.expose()), (Provider::Microsoft, "verifier-secret"));
    assert!(ok.redirect_uri.ends_with("/calendar/oauth/callback"));
    assert_eq!(
        db.consume_authorization(&k, "h1", ann.firm_id, ann.id, Utc::now()).await.unwrap().unwrap_err(),
        StateRejection::Used
    );
    assert_eq!(
        db.consume_authorization(&k, "nope", ann.firm_id, ann.id, Utc::now()).await.unwrap().unwrap_err(),
        StateRejection::Unknown
    );
    assert_eq!(
        db.consume_authorization(&k, "h2", ann.firm_id, ann.id, Utc::now()).await.unwrap().unwrap_err(),
        StateRejection::Expired
    );
    assert_eq!(
        db.consume_authorization(&k, "h2", ann.firm_id, ann.id, Utc::now()).await.unwrap().unwrap_err(),
        StateRejection::Used
    );
}

async fn grants_are_sealed_and_reconnects_update(backend: Backend) {
    let t = TestDb::new(backend).await;
    let (db, k) = (&t.db, keyring());
    let ann = user(db, "acme", "ann@acme.test").await;
    let first = db.save_grant(&k, &grant(&ann, "ya29.first", Some("1//refresh-one")), &[]).await.unwrap();
    assert_eq!((first.status, first.has_refresh_token), (ConnectionStatus::Active, true));
    assert_eq!(first.settings.sync_window_days, SyncWindowDays::DEFAULT);
    let tokens = db.tokens(&k, ann.firm_id, first.id).await.unwrap();
    assert_eq!(tokens.access_token.as_deref(), Some("ya29.first"));
    assert!(!format!("{tokens:?}").contains("ya29"), "Debug hides tokens");

    db.set_connection_status(
        ann.firm_id,
        first.id,
        None,
        ConnectionStatus::Expired,
        StatusReason::GrantExpired,
        "Reconnect",
        false,
    )
    .await
    .unwrap();
    let expired = db.connection(ann.firm_id, None, first.id).await.unwrap();
    assert_eq!(expired.status_reason, Some(StatusReason::GrantExpired));
    let again = db.save_grant(&k, &grant(&ann, "ya29.second", None), &[]).await.unwrap();
    assert_eq!(again.id, first.id, "same account, same connection");
    assert_eq!(again.status, ConnectionStatus::Active);
    assert_eq!(again.status_message, "");
    assert_eq!(again.status_reason, None, "a reconnect clears the reason");
    let tokens = db.tokens(&k, ann.firm_id, first.id).await.unwrap();
    assert_eq!(tokens.access_token.as_deref(), Some("ya29.second"));
    assert_eq!(tokens.refresh_token.as_deref(), Some("1//refresh-one"), "kept when none was sent");
    assert_eq!(db.connections(ann.firm_id, Some(ann.id)).await.unwrap().len(), 1);

    let outsider = user(db, "globex", "eve@globex.test").await;
    assert!(db.connection(outsider.firm_id, None, first.id).await.is_err());
    assert!(db.tokens(&k, outsider.firm_id, first.id).await.is_err());
    assert!(db.connection(ann.firm_id, Some(outsider.id), first.id).await.is_err());

    let wrong_key = keyring();
    assert!(db.tokens(&wrong_key, ann.firm_id, first.id).await.is_err(), "another key cannot read them");

    // The account renamed its address: a reconnect finds the connection by the account's id
    // and shows the new address; another account with the old address is a new connection.
    let renamed = NewGrant { account_email: "ann.new@gmail.test".into(), ..grant(&ann, "ya29.third", None) };
    let after = db.save_grant(&k, &renamed, &[]).await.unwrap();
    assert_eq!((after.id, after.account_email.as_str()), (first.id, "ann.new@gmail.test"));
    let other = NewGrant { account_id: "999".into(), account_email: "ann@gmail.test".into(), ..grant(&ann, "x", None) };
    assert_ne!(db.save_grant(&k, &other, &[]).await.unwrap().id, first.id);
    assert_eq!(db.connections(ann.firm_id, Some(ann.id)).await.unwrap().len(), 2);
}

/// Connections made before account ids were kept are found once by their address, then keep
/// the id.
async fn connections_without_an_account_id_are_adopted_once(backend: Backend) {
    let t = TestDb::new(backend).await;
    let (db, k) = (&t.db, keyring());
    let ann = user(db, "acme", "ann@acme.test").await;
    let first = db.save_grant(&k, &grant(&ann, "a", Some("r")), &[]).await.unwrap();
    // As a row written before migration 0004 looks.
    let sql = "UPDATE oauth_connections SET account_id = NULL";
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&t.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&t.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
    }
    let again = db.save_grant(&k, &grant(&ann, "b", None), &[]).await.unwrap();
    assert_eq!(again.id, first.id, "matched by address when no id was kept");
    let renamed = NewGrant { account_email: "ann.new@gmail.test".into(), ..grant(&ann, "c", None) };
    assert_eq!(db.save_grant(&k, &renamed, &[]).await.unwrap().id, first.id, "the id was kept this time");
}

async fn refresh_lock_has_one_owner(backend: Backend) {
    let t = TestDb::new(backend).await;
    let (db, k) = (&t.db, keyring());
    let ann = user(db, "acme", "ann@acme.test").await;
    let c = db.save_grant(&k, &grant(&ann, "a", Some("r")), &[]).await.unwrap();
    let f = ann.firm_id;
    let soon = Utc::now() + Duration::seconds(30);
    assert!(db.try_lock_refresh(f, c.id, "w1", soon).await.unwrap());
    assert!(!db.try_lock_refresh(f, c.id, "w2", soon).await.unwrap());
    assert!(db.try_lock_refresh(f, c.id, "w1", soon).await.unwrap(), "re-entrant for its owner");
    db.release_refresh_lock(f, c.id, "w2").await.unwrap();
    assert!(!db.try_lock_refresh(f, c.id, "w2", soon).await.unwrap(), "only the owner releases");
    assert!(
        !db.store_refreshed_tokens(
            &k,
            f,
            c.id,
            "w2",
            RefreshedTokens { access_token: "stolen", refresh_token: None, expires_at: soon }
        )
        .await
        .unwrap(),
        "only the lock owner stores"
    );
    assert!(
        db.store_refreshed_tokens(
            &k,
            f,
            c.id,
            "w1",
            RefreshedTokens { access_token: "a2", refresh_token: Some("r2"), expires_at: soon }
        )
        .await
        .unwrap()
    );
    assert!(
        db.try_lock_refresh(f, c.id, "w2", Utc::now() - Duration::seconds(1)).await.unwrap(),
        "storing released it"
    );
    assert!(db.try_lock_refresh(f, c.id, "w3", soon).await.unwrap(), "an expired lock is taken over");
    let tokens = db.tokens(&k, f, c.id).await.unwrap();
    assert_eq!((tokens.access_token.as_deref(), tokens.refresh_token.as_deref()), (Some("a2"), Some("r2")));
    assert!(db.try_lock_refresh(FirmId::new(), c.id, "w9", soon).await.is_ok_and(|got| !got), "firm-scoped");
    // A disconnect while w3 refreshes: w3's result, success or failure, must not undo it.
    let gone = db.disconnect(f, ann.id, c.id, "Disconnected").await.unwrap();
    assert_eq!(gone.status_reason, Some(StatusReason::Disconnected));
    assert!(
        !db.store_refreshed_tokens(
            &k,
            f,
            c.id,
            "w3",
            RefreshedTokens { access_token: "late", refresh_token: Some("late-r"), expires_at: soon }
        )
        .await
        .unwrap()
    );
    assert!(
        !db.set_connection_status(
            f,
            c.id,
            Some("w3"),
            ConnectionStatus::Expired,
            StatusReason::GrantExpired,
            "x",
            true
        )
        .await
        .unwrap()
    );
    let after = db.connection(f, None, c.id).await.unwrap();
    assert_eq!((after.status, after.has_refresh_token), (ConnectionStatus::Revoked, false));
    assert_eq!(db.tokens(&k, f, c.id).await.unwrap().access_token, None);
    // Reconnecting after a disconnect turns sync back on.
    let back = db.save_grant(&k, &grant(&ann, "a3", Some("r3")), &[]).await.unwrap();
    assert_eq!((back.id, back.status, back.settings.sync_enabled), (c.id, ConnectionStatus::Active, true));
    assert!(!db.try_lock_refresh(f, ConnectionId::new(), "w1", soon).await.unwrap());
}

async fn calendars_settings_and_disconnect(backend: Backend) {
    let t = TestDb::new(backend).await;
    let (db, k) = (&t.db, keyring());
    let ann = user(db, "acme", "ann@acme.test").await;
    let cal = |id: &str, primary: bool| CalendarInfo {
        remote_id: id.into(),
        name: format!("Cal {id}"),
        is_primary: primary,
        can_write: true,
        time_zone: Some("Europe/Berlin".into()),
        color: Some("#0f5aa3".into()),
    };
    // The grant and its calendars are stored together.
    let c = db.save_grant(&k, &grant(&ann, "a", Some("r")), &[cal("work", false), cal("main", true)]).await.unwrap();
    let cals = db.calendars(ann.firm_id, c.id).await.unwrap();
    assert_eq!(
        cals.iter().map(|c| (c.remote_id.as_str(), c.selected)).collect::<Vec<_>>(),
        [("main", true), ("work", false)]
    );
    assert!(cals.iter().all(|c| c.color.as_deref() == Some("#0f5aa3")), "colours are kept");

    let bad = SettingsChange {
        selected_calendars: Some(vec!["work".into(), "ghost".into()]),
        sync_window_days: Some(SyncWindowDays::parse(90).unwrap()),
        ..Default::default()
    };
    let refused = db.update_connection_settings(ann.firm_id, ann.id, c.id, &bad).await.unwrap().unwrap_err();
    assert_eq!(refused.field, "selected_calendars[1]");
    assert_eq!(
        db.connection(ann.firm_id, None, c.id).await.unwrap().settings.sync_window_days.days(),
        30,
        "nothing half-written"
    );

    let enable_revoked_later = SettingsChange { sync_enabled: Some(true), ..Default::default() };
    let good = SettingsChange {
        selected_calendars: Some(vec!["work".into()]),
        conflict_strategy: Some(ConflictStrategy::Manual),
        sync_enabled: Some(false),
        ..Default::default()
    };
    let updated = db.update_connection_settings(ann.firm_id, ann.id, c.id, &good).await.unwrap().unwrap();
    assert_eq!((updated.settings.conflict_strategy, updated.settings.sync_enabled), (ConflictStrategy::Manual, false));
    // A re-listing keeps the user's choice and drops calendars that are gone.
    db.replace_calendars(ann.firm_id, c.id, &[cal("work", false), cal("main", true), cal("new", false)]).await.unwrap();
    db.replace_calendars(ann.firm_id, c.id, &[cal("work", false), cal("main", true)]).await.unwrap();
    let cals = db.calendars(ann.firm_id, c.id).await.unwrap();
    assert_eq!(
        cals.iter().map(|c| (c.remote_id.as_str(), c.selected)).collect::<Vec<_>>(),
        [("main", false), ("work", true)]
    );

    let bob = user(db, "acme", "bob@acme.test").await;
    assert!(db.disconnect(ann.firm_id, bob.id, c.id, "x").await.is_err(), "user-scoped");
    let gone = db.disconnect(ann.firm_id, ann.id, c.id, "Disconnected").await.unwrap();
    let refused =
        db.update_connection_settings(ann.firm_id, ann.id, c.id, &enable_revoked_later).await.unwrap().unwrap_err();
    assert_eq!(refused.field, "sync_enabled", "a disconnected connection cannot sync");
    assert_eq!(
        (gone.status, gone.has_refresh_token, gone.settings.sync_enabled),
        (ConnectionStatus::Revoked, false, false)
    );
    let tokens = db.tokens(&k, ann.firm_id, c.id).await.unwrap();
    assert!(tokens.access_token.is_none() && tokens.refresh_token.is_none());
}

async fn keys_rotate_to_the_newest(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let old_spec = Keyring::generate_spec("old");
    let old = Keyring::parse(&old_spec).unwrap();
    let ann = user(db, "acme", "ann@acme.test").await;
    let c = db.save_grant(&old, &grant(&ann, "ya29.rot", Some("1//rot")), &[]).await.unwrap();
    db.create_authorization(&old, authorization(&ann, "pending", Duration::minutes(10))).await.unwrap();
    let both = Keyring::parse(&format!("{},{old_spec}", Keyring::generate_spec("new"))).unwrap();
    assert_eq!(db.rotate_keys(&both).await.unwrap(), 3);
    assert_eq!(db.rotate_keys(&both).await.unwrap(), 0, "nothing left to rotate");
    assert!(db.tokens(&old, ann.firm_id, c.id).await.is_err(), "the old key alone no longer reads them");
    let tokens = db.tokens(&both, ann.firm_id, c.id).await.unwrap();
    assert_eq!(tokens.refresh_token.as_deref(), Some("1//rot"));
    let auth = db.consume_authorization(&both, "pending", ann.firm_id, ann.id, Utc::now()).await.unwrap().unwrap();
    assert_eq!(auth.pkce_verifier.expose(), "verifier-secret");
}

backend_tests!(
    authorization_records_are_single_use,
    grants_are_sealed_and_reconnects_update,
    connections_without_an_account_id_are_adopted_once,
    refresh_lock_has_one_owner,
    calendars_settings_and_disconnect,
    keys_rotate_to_the_newest,
);
