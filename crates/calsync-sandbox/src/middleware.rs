//! The layer in front of every provider route: request counting, fault injection, Graph
//! per-mailbox throttling and injected latency, in that order.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::faults::{FaultKind, reset_response};
use crate::state::{Provider, Shared};
use crate::{google, microsoft, webhook};

pub(crate) async fn google_layer(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    provider_layer(shared, Provider::Google, req, next).await
}

pub(crate) async fn microsoft_layer(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    provider_layer(shared, Provider::Microsoft, req, next).await
}

/// The route template relative to the sandbox root, whatever prefix the sandbox is mounted at.
fn route_key(req: &Request) -> String {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    let rel =
        ["/google/", "/microsoft/"].iter().filter_map(|p| path.find(p)).min().map_or(path.as_str(), |i| &path[i..]);
    format!("{} {}", req.method(), rel)
}

async fn provider_layer(shared: Arc<Shared>, provider: Provider, req: Request, next: Next) -> Response {
    // The sandbox's own writes (sample events) are not client traffic: no counting, faults,
    // throttling or latency.
    if req.extensions().get::<crate::samples::Internal>().is_some() {
        let resp = next.run(req).await;
        webhook::flush(&shared);
        return resp;
    }
    shared.count_request(route_key(&req));
    let path = req.uri().path().to_owned();
    if let Some(fired) = shared.faults.take(provider, req.method(), &path) {
        match fired.kind {
            FaultKind::Status => {
                return match provider {
                    Provider::Google => google::fault_response(&path, &fired),
                    Provider::Microsoft => microsoft::fault_response(&path, &fired),
                };
            }
            FaultKind::Timeout => {
                tokio::time::sleep(shared.config.timeout_fault_duration).await;
                return reset_response();
            }
            FaultKind::Reset => return reset_response(),
            FaultKind::DropAfterCommit => {
                let _committed = next.run(req).await;
                webhook::flush(&shared);
                return reset_response();
            }
        }
    }
    // Graph throttling holds its concurrency slot across the latency and the handler, as a
    // slow mailbox would.
    let _slot = if provider == Provider::Microsoft && path.starts_with("/microsoft/graph/") {
        match microsoft::admit(&shared, req.headers()) {
            Ok(slot) => slot,
            Err(resp) => return resp,
        }
    } else {
        None
    };
    // Google Calendar API quotas (the OAuth endpoints are not metered).
    if provider == Provider::Google
        && path.contains("/calendar/v3/")
        && let Err(resp) = google::admit(&shared, req.headers())
    {
        return resp;
    }
    let latency = shared.latency();
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    // Google's `fields` partial responses: validated first, applied to the JSON reply.
    let selection = match (provider, google::fields::requested(req.uri().query())) {
        (Provider::Google, Some(expr)) if path.contains("/calendar/v3/") => match google::fields::check(&expr) {
            Ok(sel) => Some(sel),
            Err(resp) => return resp,
        },
        _ => None,
    };
    let resp = next.run(req).await;
    // Deliveries go out after the change is committed and the lock released.
    webhook::flush(&shared);
    match selection {
        Some(sel) => google::fields::filter(resp, &sel).await,
        None => resp,
    }
}
