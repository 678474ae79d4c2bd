//! The one start-up seam shared by the binary and the tests: [`Application::build`] binds the
//! listener (port 0 works) and assembles the router; [`Application::run_until_stopped`] serves until
//! the given shutdown future completes, finishing in-flight requests.

use crate::config::Config;
use crate::providers::{SANDBOX_PATH, SandboxMode};
use crate::services::connections::ConnectionService;
use crate::state::AppState;
use crate::throttle::{Backoff, RateLimiter, Throttle};
use crate::{api, ops, web};
use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::MatchedPath;
use axum::http::header::{
    AUTHORIZATION, CONTENT_SECURITY_POLICY, COOKIE, SET_COOKIE, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use calsync_store::Db;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::{SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub struct Application {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
    db: Db,
    state: AppState,
    /// The embedded provider sandbox, saved once more at shutdown.
    sandbox: Option<calsync_sandbox::Sandbox>,
    /// The background sync worker, started with the server.
    worker: Option<crate::worker::Worker>,
}

/// What a process built by [`Application::build_as`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The web service and API, with a sync worker unless the configuration turns it off.
    Service,
    /// A sync worker alone, with the operator endpoints (`/healthz`, `/readyz`, `/metrics`).
    Worker,
}

impl Application {
    /// Connects to the configured database, applies migrations and binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database_url).await.context("cannot open the database")?;
        db.migrate().await.context("cannot apply database migrations")?;
        Self::build_with_db(config, db).await
    }

    /// Binds with an already migrated database.
    pub async fn build_with_db(config: Config, db: Db) -> anyhow::Result<Self> {
        Self::build_as(config, db, Role::Service).await
    }

    /// Binds with an already migrated database, as the service or as a worker alone.
    pub async fn build_as(mut config: Config, db: Db, role: Role) -> anyhow::Result<Self> {
        crate::metrics::install();
        let listener =
            TcpListener::bind(&config.bind).await.with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;
        // Bound to port 0: the public URL (and with it OAuth redirects) takes the real port.
        if config.public_url.port() == Some(0) {
            let _ = config.public_url.set_port(Some(addr.port()));
        }
        if let Some(w) = config.sync.webhooks.as_mut() {
            w.base_url = config.public_url.as_str().trim_end_matches('/').to_owned();
        }
        let providers = Arc::new(crate::providers::resolve(
            &config.providers,
            &config.sandbox,
            &config.public_url,
            config.environment == crate::config::Environment::Development,
        )?);
        crate::services::accounts::warm_up().await;
        // One clock for the store and the services: tests advance it instead of sleeping.
        let clock = db.clock().clone();
        match &config.sandbox {
            SandboxMode::Embedded => tracing::warn!(
                served = ?providers.sandboxed(),
                "provider sandbox mounted at {SANDBOX_PATH}: its control routes need no credentials; \
                 set CALSYNC_SANDBOX=off or configure real clients to remove it"
            ),
            SandboxMode::External(url) => {
                tracing::info!(%url, served = ?providers.sandboxed(), "using an external provider sandbox")
            }
            SandboxMode::Off => tracing::info!("provider sandbox off"),
        }
        let sandbox = if config.sandbox == SandboxMode::Embedded && role == Role::Service {
            Some(calsync_sandbox::Sandbox::open(calsync_sandbox::SandboxConfig {
                public_base_url: config.public(SANDBOX_PATH),
                state_file: config.sandbox_state.clone(),
                ..Default::default()
            })?)
        } else {
            None
        };
        let connections =
            Arc::new(ConnectionService::new(db.clone(), config.keyring.clone(), providers.clone(), clock.clone()));
        let engine =
            Arc::new(calsync_engine::SyncEngine::new(db.clone(), connections.tokens(), providers, config.sync.clone()));
        let sync = Arc::new(crate::services::sync::SyncService::new(db.clone(), Arc::clone(&engine)));
        let run_worker = role == Role::Worker || config.worker.enabled;
        let worker = run_worker.then(|| {
            let state = Arc::new(crate::worker::WorkerState::default());
            (crate::worker::Worker::new(db.clone(), engine, config.worker.clone(), Arc::clone(&state)), state)
        });
        let api_limiter = Arc::new(RateLimiter::new(config.api_rate_per_minute, config.api_rate_burst));
        let state = AppState {
            db: db.clone(),
            config: Arc::new(config),
            login_throttle: Arc::new(Backoff::new(5, Duration::from_secs(15 * 60))),
            login_ip_throttle: Arc::new(Throttle::new(100, Duration::from_secs(15 * 60))),
            api_limiter,
            bad_token_throttle: Arc::new(Throttle::new(BAD_TOKENS_PER_WINDOW, Duration::from_secs(10 * 60))),
            connections,
            sync,
            clock,
            worker: worker.as_ref().map(|(_, state)| Arc::clone(state)),
        };
        let mut router = match role {
            Role::Service => router(state.clone()),
            Role::Worker => ops_router(state.clone()),
        };
        if let Some(sandbox) = &sandbox {
            router = router.nest(SANDBOX_PATH, sandbox_headers(sandbox.router()));
        }
        let worker = worker.map(|(w, _)| w);
        Ok(Self { listener, router, addr, db, state, sandbox, worker })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The shared state, for tests that drive services directly.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        // One shutdown for both: the server stops taking requests, the worker claiming.
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let worker = self.worker.map(|w| {
            let mut stopped = stopped.clone();
            tokio::spawn(w.run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        });
        let shutdown = async move {
            shutdown.await;
            let _ = stopping.send(true);
        };
        let result = axum::serve(self.listener, service).with_graceful_shutdown(shutdown).await;
        if let Some(w) = worker {
            let _ = w.await;
        }
        if let Some(sandbox) = &self.sandbox
            && let Err(e) = sandbox.save()
        {
            tracing::error!(error = %e, "the embedded sandbox's last changes were not saved");
        }
        self.db.close().await;
        result
    }
}

/// Requests with an invalid API token one client address may make per ten minutes.
pub const BAD_TOKENS_PER_WINDOW: u32 = 100;

/// One year, subdomains included, once the public URL is https.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The embedded sandbox's pages (consent, errors) may not be framed or sniffed either; its
/// consent page styles itself inline and posts to itself.
fn sandbox_headers(router: Router) -> Router {
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let providers = state.connections.providers();
    let mut form_origins: Vec<String> = [&providers.google, &providers.microsoft]
        .into_iter()
        .flatten()
        .map(|s| s.oauth.authorize_url.origin().ascii_serialization())
        .collect();
    form_origins.sort();
    form_origins.dedup();
    let request_id = HeaderName::from_static("x-request-id");
    // HSTS only where the browser reached us over https; on http it would be ignored anyway.
    let hsts = state
        .config
        .secure_cookies()
        .then(|| SetResponseHeaderLayer::overriding(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS)));
    Router::new()
        .merge(api::router(max_body))
        .merge(web::router(&form_origins))
        .merge(ops::router())
        .merge(crate::webhooks::router())
        .with_state(state)
        // Every body, forms included (axum's own default would let a form carry 2 MB).
        .layer(DefaultBodyLimit::max(max_body))
        .layer(SetResponseHeaderLayer::overriding(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(tower::util::option_layer(hsts))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([
                    AUTHORIZATION,
                    COOKIE,
                    HeaderName::from_static("x-goog-channel-token"),
                ]))
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request<Body>| {
                            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                            // The matched route, never the query string (it may hold OAuth codes).
                            let route = req.extensions().get::<MatchedPath>().map_or(req.uri().path(), |m| m.as_str());
                            tracing::info_span!("request", method = %req.method(), route, request_id = id)
                        })
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(SetSensitiveResponseHeadersLayer::new([SET_COOKIE]))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::new())
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30))),
        )
}

/// The operator endpoints alone (a worker process).
fn ops_router(state: AppState) -> Router {
    Router::new()
        .merge(ops::router())
        .with_state(state)
        .layer(SetResponseHeaderLayer::overriding(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(CatchPanicLayer::new())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
