//! Firms, users, credentials and the first-run bootstrap.

use super::ServiceError;
use crate::crypto::{random_token, token_hash};
use calsync_domain::account::{Email, FirmSlug, Password, parse_name};
use calsync_domain::ids::ApiTokenId;
use calsync_domain::tenant::Role;
use calsync_store::{ApiTokenInfo, AuthenticatedUser, Db, Firm, NewUser, StoreError, User};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::Semaphore;

pub async fn create_firm(db: &Db, name: &str, slug: &str) -> Result<Firm, ServiceError> {
    let name = parse_name(name, "name")?;
    let slug = FirmSlug::parse(slug)?;
    Ok(db.create_firm(&name, &slug).await?)
}

pub async fn create_user(
    db: &Db,
    firm_slug: &str,
    email: &str,
    name: &str,
    role: &str,
    password: &str,
) -> Result<User, ServiceError> {
    let email = Email::parse(email)?;
    let name = parse_name(name, "name")?;
    let role: Role = role.parse()?;
    let password = Password::parse(password)?;
    let firm = db.firm_by_slug(firm_slug).await.map_err(|e| match e {
        StoreError::NotFound => ServiceError::Validation(calsync_domain::ValidationError::new(
            "firm",
            format!("no firm with slug {firm_slug:?}"),
        )),
        other => other.into(),
    })?;
    let password_hash = hash_password(password).await?;
    let user =
        db.create_user(NewUser { firm_id: firm.id, email, name, role, password_hash }).await.map_err(|e| match e {
            StoreError::Duplicate(_) => ServiceError::Conflict {
                field: "email".into(),
                message: "a user with this e-mail already exists".into(),
            },
            other => other.into(),
        })?;
    Ok(user)
}

/// Longest lifetime an expiring API token may be given.
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// Creates an API token and returns it; only its hash is stored, so this is the one chance to see
/// it. `expires_in_days` (1–3650) makes it stop working after that many days.
pub async fn create_api_token(
    db: &Db,
    email: &str,
    name: &str,
    expires_in_days: Option<u32>,
) -> Result<String, ServiceError> {
    let user = existing_user(db, email).await?;
    let name = parse_name(name, "name")?;
    let expires_at = match expires_in_days {
        None => None,
        Some(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => Some(db.clock().now() + chrono::Duration::days(i64::from(d))),
        Some(_) => {
            return Err(calsync_domain::ValidationError::new(
                "expires_in_days",
                format!("must be between 1 and {MAX_TOKEN_DAYS}"),
            )
            .into());
        }
    };
    let token = random_token("cs_");
    db.create_api_token(&user, &name, &token_hash(&token), expires_at).await?;
    Ok(token)
}

/// A user's API tokens (never the secrets), newest first.
pub async fn list_api_tokens(db: &Db, email: &str) -> Result<Vec<ApiTokenInfo>, ServiceError> {
    let user = existing_user(db, email).await?;
    Ok(db.list_api_tokens(&user).await?)
}

/// Revokes an API token by id: requests with it are refused from now on.
pub async fn revoke_api_token(db: &Db, id: &str) -> Result<ApiTokenInfo, ServiceError> {
    let id: ApiTokenId = id.trim().parse().map_err(|_| {
        ServiceError::Validation(calsync_domain::ValidationError::new("id", "is not a token id (a UUID)"))
    })?;
    db.revoke_api_token(id).await.map_err(|e| match e {
        StoreError::NotFound => {
            ServiceError::Validation(calsync_domain::ValidationError::new("id", format!("no API token with id {id}")))
        }
        other => other.into(),
    })
}

async fn existing_user(db: &Db, email: &str) -> Result<User, ServiceError> {
    let email = Email::parse(email)?;
    db.user_by_email(&email).await.map_err(|e| match e {
        StoreError::NotFound => ServiceError::Validation(calsync_domain::ValidationError::new(
            "email",
            format!("no user with e-mail {email}"),
        )),
        other => other.into(),
    })
}

pub async fn user_for_api_token(db: &Db, token: &str) -> Result<AuthenticatedUser, ServiceError> {
    Ok(db.user_by_api_token(&token_hash(token)).await?)
}

/// Checks an e-mail and password. Unknown e-mails cost the same hash verification as known ones,
/// so response times do not reveal which accounts exist.
pub async fn authenticate(db: &Db, email: &str, password: &str) -> Result<Option<User>, ServiceError> {
    let found = match Email::parse(email) {
        Ok(email) => match db.user_credentials(&email).await {
            Ok(found) => Some(found),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        Err(_) => None,
    };
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, dummy_hash().to_owned()),
    };
    let ok = verify_password(password.to_owned(), hash).await?;
    Ok(user.filter(|_| ok))
}

/// Argon2 takes about 19 MiB and tens of milliseconds per hash, by design. Unbounded, a flood
/// of sign-ins (unknown addresses too: they are checked against a dummy hash so timing does
/// not tell which exist) took the process to gigabytes. So hashing runs on a fixed pool of
/// two threads per core, each reusing its own memory (`passwords`), at most that many at
/// once, and a request that cannot get a turn within a second is answered 503.
struct PasswordPool {
    permits: Semaphore,
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce() + Send>;

fn pool() -> &'static PasswordPool {
    static POOL: OnceLock<PasswordPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let size = 2 * std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..size {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("calsync-argon2-{i}")).spawn(move || {
                loop {
                    // The lock is held only while taking a job, never while running it.
                    let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        PasswordPool { permits: Semaphore::new(size), jobs: std::sync::Mutex::new(tx) }
    })
}

/// Runs `work` on the password pool once a turn is free (503 after a second without one).
async fn on_password_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ServiceError> {
    let pool = pool();
    let _turn = match tokio::time::timeout(Duration::from_secs(1), pool.permits.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => return Err(ServiceError::Busy { retry_after: 1 }),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(work());
    });
    pool.jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(job)
        .map_err(|_| ServiceError::Internal(anyhow::anyhow!("the password pool has stopped")))?;
    rx.await.map_err(|_| ServiceError::Internal(anyhow::anyhow!("a password hashing job was lost")))
}

pub async fn hash_password(password: Password) -> Result<String, ServiceError> {
    on_password_pool(move || super::passwords::hash(password.expose().as_bytes()))
        .await?
        .map_err(ServiceError::Internal)
}

async fn verify_password(password: String, hash: String) -> Result<bool, ServiceError> {
    on_password_pool(move || super::passwords::verify(password.as_bytes(), &hash)).await
}

/// Computes the timing equaliser ahead of the first sign-in (off the async threads).
pub async fn warm_up() {
    let _ = on_password_pool(|| {
        dummy_hash();
    })
    .await;
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| super::passwords::hash(b"calsync-timing-equaliser").unwrap_or_default())
}

/// What the first run created, to show once.
pub struct FirstRun {
    pub email: String,
    pub password: String,
    pub api_token: String,
}

pub const DEMO_FIRM_SLUG: &str = "demo";
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.test";

/// On an empty database, creates the demo firm and its admin with a random password and token.
/// Returns `None` when any user exists (or another process bootstrapped first).
pub async fn bootstrap_if_empty(db: &Db) -> Result<Option<FirstRun>, ServiceError> {
    if db.count_users().await? > 0 {
        return Ok(None);
    }
    // An earlier attempt may have stopped after creating the firm: reuse it.
    match db.firm_by_slug(DEMO_FIRM_SLUG).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => match create_firm(db, "Demo Firm", DEMO_FIRM_SLUG).await {
            Ok(_) | Err(ServiceError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e.into()),
    }
    let password = random_token("").chars().take(20).collect::<String>();
    match create_user(db, DEMO_FIRM_SLUG, DEMO_ADMIN_EMAIL, "Demo Admin", "admin", &password).await {
        Ok(_) => {}
        Err(ServiceError::Conflict { .. }) => return Ok(None),
        Err(e) => return Err(e),
    }
    let api_token = create_api_token(db, DEMO_ADMIN_EMAIL, "first-run", None).await?;
    Ok(Some(FirstRun { email: DEMO_ADMIN_EMAIL.into(), password, api_token }))
}
