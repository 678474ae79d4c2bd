//! Injected faults: a rule matches provider requests by method and path and fires `count`
//! times. Status faults answer with the provider's own error body for that route.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::Method;
use axum::response::Response;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::state::Provider;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultKind {
    /// Answer with `status` and the provider's error body.
    Status,
    /// Hold the request, then drop the connection without an answer.
    Timeout,
    /// Drop the connection without an answer; nothing is processed.
    Reset,
    /// Process the request (the change is committed), then drop the connection.
    DropAfterCommit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    pub provider: Provider,
    pub method: Option<String>,
    pub path_regex: Option<String>,
    pub count: u32,
    /// Let this many matching requests through before the fault starts firing (a failure in
    /// the middle of a paged listing). Default 0.
    #[serde(default)]
    pub skip: u32,
    pub kind: FaultKind,
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    /// Overrides the error reason: Google `reason` (`quotaExceeded`…), Graph `code`, or an
    /// AADSTS number for the Microsoft token endpoint.
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Fired {
    pub kind: FaultKind,
    pub status: u16,
    pub retry_after: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Debug)]
struct Rule {
    provider: Provider,
    method: Option<Method>,
    path: Option<Regex>,
    remaining: u32,
    /// Matching requests still to let through before firing.
    skip: u32,
    fired: Fired,
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Mutex<Vec<Rule>>,
}

impl Faults {
    pub(crate) fn add(&self, spec: FaultSpec) -> Result<(), String> {
        let method = spec
            .method
            .map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()))
            .transpose()
            .map_err(|_| "invalid method".to_string())?;
        let path =
            spec.path_regex.map(|r| Regex::new(&r)).transpose().map_err(|e| format!("invalid path_regex: {e}"))?;
        let status = match (spec.kind, spec.status) {
            (FaultKind::Status, None) => return Err("kind status needs a status".into()),
            (FaultKind::Status, Some(s)) if !(400..=599).contains(&s) => {
                return Err("status must be 400..=599".into());
            }
            (_, s) => s.unwrap_or(0),
        };
        if spec.count == 0 {
            return Err("count must be at least 1".into());
        }
        if spec.provider == Provider::Google {
            crate::google::check_fault(spec.retry_after)?;
        }
        self.lock().push(Rule {
            provider: spec.provider,
            method,
            path,
            remaining: spec.count,
            skip: spec.skip,
            fired: Fired { kind: spec.kind, status, retry_after: spec.retry_after, reason: spec.reason },
        });
        Ok(())
    }

    /// The first matching rule fires once; spent rules disappear.
    pub(crate) fn take(&self, provider: Provider, method: &Method, path: &str) -> Option<Fired> {
        let mut rules = self.lock();
        let idx = rules.iter().position(|r| {
            r.provider == provider
                && r.method.as_ref().is_none_or(|m| m == method)
                && r.path.as_ref().is_none_or(|re| re.is_match(path))
        })?;
        let rule = &mut rules[idx];
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        rule.remaining -= 1;
        let fired = rule.fired.clone();
        if rule.remaining == 0 {
            rules.remove(idx);
        }
        Some(fired)
    }

    /// Removes every rule; answers how many were armed.
    pub(crate) fn clear(&self) -> usize {
        std::mem::take(&mut *self.lock()).len()
    }

    /// The rules still armed, in matching order, with what is left of each count.
    pub(crate) fn list(&self) -> Vec<serde_json::Value> {
        self.lock()
            .iter()
            .map(|r| {
                serde_json::json!({
                    "provider": r.provider,
                    "method": r.method.as_ref().map(Method::as_str),
                    "path_regex": r.path.as_ref().map(Regex::as_str),
                    "kind": r.fired.kind,
                    "status": (r.fired.status != 0).then_some(r.fired.status),
                    "retry_after": r.fired.retry_after,
                    "reason": r.fired.reason,
                    "remaining": r.remaining,
                    "skip": r.skip,
                })
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A body that fails on first poll. Hyper then aborts the connection instead of finishing the
/// response, which the client sees as a reset / incomplete message.
struct BrokenBody;

impl http_body::Body for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "sandbox fault: connection reset",
        ))))
    }
}

pub(crate) fn reset_response() -> Response {
    Response::new(Body::new(BrokenBody))
}
