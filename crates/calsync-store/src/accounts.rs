//! Firms, users, API tokens and web sessions. Secrets never reach this module in the clear: token
//! and session values arrive as hashes, passwords as argon2 PHC strings.

use crate::{Db, StoreError, on_pool};
use calsync_domain::Secret;
use calsync_domain::account::{Email, FirmSlug};
use calsync_domain::ids::{ApiTokenId, FirmId, SessionId, UserId};
use calsync_domain::tenant::{Actor, Role};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Firm {
    #[sqlx(try_from = "Uuid")]
    pub id: FirmId,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub firm_id: FirmId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// What a new user is made of. The password arrives already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub firm_id: FirmId,
    pub email: Email,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

/// A user resolved from a credential, with the firm they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub actor: Actor,
    pub email: String,
    pub name: String,
    pub firm_name: String,
}

/// An API token as operators see it: never the secret, which is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenInfo {
    pub id: ApiTokenId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ApiTokenRow {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiTokenRow> for ApiTokenInfo {
    fn from(r: ApiTokenRow) -> Self {
        Self {
            id: ApiTokenId(r.id),
            name: r.name,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A live web session and its CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub id: SessionId,
    pub user: AuthenticatedUser,
    pub csrf_token: Secret,
    pub expires_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    firm_id: Uuid,
    email: String,
    name: String,
    role: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: r.id.into(),
            firm_id: r.firm_id.into(),
            email: r.email,
            name: r.name,
            role: r.role.parse().map_err(|_| StoreError::Corrupt(format!("users.role {:?}", r.role)))?,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AuthRow {
    user_id: Uuid,
    firm_id: Uuid,
    role: String,
    email: String,
    name: String,
    firm_name: String,
}

impl TryFrom<AuthRow> for AuthenticatedUser {
    type Error = StoreError;
    fn try_from(r: AuthRow) -> Result<Self, StoreError> {
        Ok(AuthenticatedUser {
            actor: Actor {
                firm_id: r.firm_id.into(),
                user_id: r.user_id.into(),
                role: r.role.parse().map_err(|_| StoreError::Corrupt(format!("users.role {:?}", r.role)))?,
            },
            email: r.email,
            name: r.name,
            firm_name: r.firm_name,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    session_id: Uuid,
    csrf_token: String,
    expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    user: AuthRow,
}

const AUTH_COLUMNS: &str = "u.id AS user_id, u.firm_id, u.role, u.email, u.name, f.name AS firm_name";

impl Db {
    pub async fn create_firm(&self, name: &str, slug: &FirmSlug) -> Result<Firm, StoreError> {
        let firm =
            Firm { id: FirmId::new(), name: name.to_owned(), slug: slug.as_str().to_owned(), created_at: self.now() };
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO firms (id, name, slug, created_at) VALUES ($1, $2, $3, $4)")
                .bind(firm.id.as_uuid())
                .bind(&firm.name)
                .bind(&firm.slug)
                .bind(firm.created_at)
                .execute(pool)
                .await
                .map_err(|e| StoreError::unique(e, "slug"))?;
        });
        Ok(firm)
    }

    pub async fn firm_by_slug(&self, slug: &str) -> Result<Firm, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, Firm>("SELECT id, name, slug, created_at FROM firms WHERE slug = $1")
                .bind(slug)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound)
        })
    }

    pub async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let now = self.now();
        let user = User {
            id: UserId::new(),
            firm_id: new.firm_id,
            email: new.email.as_str().to_owned(),
            name: new.name,
            role: new.role,
            created_at: now,
        };
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO users (id, firm_id, email, name, role, password_hash, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(user.id.as_uuid())
            .bind(user.firm_id.as_uuid())
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(&new.password_hash)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| match e.as_database_error() {
                Some(db) if db.is_foreign_key_violation() => StoreError::NotFound,
                _ => StoreError::unique(e, "email"),
            })?;
        });
        Ok(user)
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(pool).await?;
            Ok(n)
        })
    }

    /// The user with this e-mail and their password hash, for login. E-mails are unique across
    /// firms, so an e-mail alone identifies the tenant.
    pub async fn user_credentials(&self, email: &Email) -> Result<(User, String), StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserRow,
            password_hash: String,
        }
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, firm_id, email, name, role, created_at, password_hash FROM users WHERE email = $1",
            )
            .bind(email.as_str())
            .fetch_optional(pool)
            .await?
        });
        let row = row.ok_or(StoreError::NotFound)?;
        Ok((row.user.try_into()?, row.password_hash))
    }

    pub async fn user_by_email(&self, email: &Email) -> Result<User, StoreError> {
        self.user_credentials(email).await.map(|(u, _)| u)
    }

    /// Stores a new API token (by hash) for a user; `expires_at` `None` never expires.
    pub async fn create_api_token(
        &self,
        user: &User,
        name: &str,
        token_hash: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<ApiTokenId, StoreError> {
        let id = ApiTokenId::new();
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO api_tokens (id, firm_id, user_id, name, token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id.as_uuid())
            .bind(user.firm_id.as_uuid())
            .bind(user.id.as_uuid())
            .bind(name)
            .bind(token_hash)
            .bind(self.now())
            .bind(expires_at)
            .execute(pool)
            .await
            .map_err(|e| StoreError::unique(e, "token"))?;
        });
        Ok(id)
    }

    /// A user's API tokens, newest first, revoked and expired ones included (never the secret).
    pub async fn list_api_tokens(&self, user: &User) -> Result<Vec<ApiTokenInfo>, StoreError> {
        let rows: Vec<ApiTokenRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, name, created_at, last_used_at, expires_at, revoked_at FROM api_tokens \
                 WHERE firm_id = $1 AND user_id = $2 ORDER BY created_at DESC, id",
            )
            .bind(user.firm_id.as_uuid())
            .bind(user.id.as_uuid())
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(ApiTokenInfo::from).collect())
    }

    /// Revokes a token by id (operator command: any firm). Revoking twice is not an error;
    /// an unknown id is `NotFound`. Returns the token as it is now.
    pub async fn revoke_api_token(&self, id: ApiTokenId) -> Result<ApiTokenInfo, StoreError> {
        let now = self.now();
        let row: Option<ApiTokenRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 \
                 RETURNING id, name, created_at, last_used_at, expires_at, revoked_at",
            )
            .bind(now)
            .bind(id.as_uuid())
            .fetch_optional(pool)
            .await?
        });
        row.map(ApiTokenInfo::from).ok_or(StoreError::NotFound)
    }

    /// Resolves a bearer token by its hash. Records use at most once a minute, so a busy client does
    /// not turn every read into a write.
    pub async fn user_by_api_token(&self, token_hash: &str) -> Result<AuthenticatedUser, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            token_id: Uuid,
            last_used_at: Option<DateTime<Utc>>,
            #[sqlx(flatten)]
            user: AuthRow,
        }
        let sql = format!(
            "SELECT t.id AS token_id, t.last_used_at, {AUTH_COLUMNS} FROM api_tokens t \
             JOIN users u ON u.id = t.user_id AND u.firm_id = t.firm_id JOIN firms f ON f.id = u.firm_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)"
        );
        let now = self.now();
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(token_hash).bind(now).fetch_optional(pool).await?
        });
        let row = row.ok_or(StoreError::NotFound)?;
        if row.last_used_at.is_none_or(|t| now - t > Duration::minutes(1)) {
            on_pool!(self, pool => {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(row.token_id)
                    .execute(pool)
                    .await?;
            });
        }
        row.user.try_into()
    }

    pub async fn create_session(
        &self,
        actor: &Actor,
        token_hash: &str,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<SessionId, StoreError> {
        let id = SessionId::new();
        let now = self.now();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Expired sessions are swept at login, the one moment a new row is written anyway.
            sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1").bind(now).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO web_sessions (id, firm_id, user_id, token_hash, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id.as_uuid())
            .bind(actor.firm_id.as_uuid())
            .bind(actor.user_id.as_uuid())
            .bind(token_hash)
            .bind(csrf_token)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "session"))?;
            tx.commit().await?;
        });
        Ok(id)
    }

    /// The live (unexpired) session with this token hash.
    pub async fn session(&self, token_hash: &str) -> Result<WebSession, StoreError> {
        let sql = format!(
            "SELECT s.id AS session_id, s.csrf_token, s.expires_at, {AUTH_COLUMNS} FROM web_sessions s \
             JOIN users u ON u.id = s.user_id AND u.firm_id = s.firm_id JOIN firms f ON f.id = u.firm_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2"
        );
        let row: Option<SessionRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(token_hash).bind(self.now()).fetch_optional(pool).await?
        });
        let row = row.ok_or(StoreError::NotFound)?;
        Ok(WebSession {
            id: row.session_id.into(),
            user: row.user.try_into()?,
            csrf_token: row.csrf_token.into(),
            expires_at: row.expires_at,
        })
    }

    pub async fn delete_session(&self, id: SessionId) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM web_sessions WHERE id = $1").bind(id.as_uuid()).execute(pool).await?;
        });
        Ok(())
    }
}
