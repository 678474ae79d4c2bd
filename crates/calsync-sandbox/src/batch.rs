//! Batch endpoints: Google's `multipart/mixed` `/batch/calendar/v3` (≤1000 parts, run in
//! a seeded shuffled order, answered in request order with `Content-ID` echoed as
//! `response-…`) and Graph's JSON `$batch` (≤20 requests,
//! `dependsOn` with 424, responses in any order). Every inner request goes through the
//! same router, middleware (counting, faults, throttling) and handlers as a direct call.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::seq::SliceRandom;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::google::ApiError;
use crate::middleware::{google_layer, microsoft_layer};
use crate::state::Shared;

const GOOGLE_MAX: usize = 1000;
const GRAPH_MAX: usize = 20;
/// Largest inner response body the sandbox buffers.
const BODY_LIMIT: usize = 64 << 20;

#[derive(Clone)]
struct BatchState {
    shared: Arc<Shared>,
    inner: Router,
}

pub(crate) fn router(shared: Arc<Shared>, inner: Router) -> Router {
    let state = BatchState { shared: shared.clone(), inner };
    let google = Router::new()
        .route("/google/batch/calendar/v3", post(google_batch))
        .layer(from_fn_with_state(shared.clone(), google_layer))
        .with_state(state.clone());
    let graph = Router::new()
        .route("/microsoft/graph/v1.0/$batch", post(graph_batch))
        .layer(from_fn_with_state(shared, microsoft_layer))
        .with_state(state);
    google.merge(graph)
}

async fn run(inner: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let resp = inner.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
    let (parts, body) = resp.into_parts();
    // A reset fault inside a batch surfaces as a failed body: answer 503 for that item.
    match to_bytes(body, BODY_LIMIT).await {
        Ok(b) => (parts.status, parts.headers, b),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new(), Bytes::new()),
    }
}

// ---------------------------------------------------------------------------------------
// Google

fn google_bad(msg: &str) -> Response {
    ApiError::bad_request(msg).into_response()
}

fn boundary_of(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    if !ct.to_ascii_lowercase().starts_with("multipart/mixed") {
        return None;
    }
    ct.split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// Header block and the rest, split at the first empty line (CRLF or LF).
fn split_head(s: &str) -> (&str, &str) {
    match (s.find("\r\n\r\n"), s.find("\n\n")) {
        (Some(a), Some(b)) if b < a => (&s[..b], &s[b + 2..]),
        (Some(a), _) => (&s[..a], &s[a + 4..]),
        (None, Some(b)) => (&s[..b], &s[b + 2..]),
        (None, None) => (s, ""),
    }
}

fn header_lines(block: &str) -> Vec<(String, String)> {
    block.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect()
}

struct Part {
    content_id: Option<String>,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn parse_parts(body: &str, boundary: &str) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    for chunk in body.split(&delim).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.trim_start_matches(['\r', '\n']);
        let (outer, http) = split_head(chunk);
        let outer = header_lines(outer);
        let ct = outer.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.as_str());
        if ct != Some("application/http") {
            return Err("Each part must have Content-Type: application/http.".into());
        }
        let content_id = outer.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-id")).map(|(_, v)| v.clone());
        let (head, body) = split_head(http);
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or_default();
        let mut it = request_line.split_whitespace();
        let (Some(method), Some(path)) = (it.next(), it.next()) else {
            return Err("Malformed request line in batch part.".into());
        };
        if !path.starts_with('/') {
            return Err("Batch part paths must be paths, not URLs.".into());
        }
        let headers = header_lines(&lines.collect::<Vec<_>>().join("\n"));
        parts.push(Part {
            content_id,
            method: method.to_owned(),
            path: path.to_owned(),
            headers,
            body: body.trim_end_matches(['\r', '\n']).to_owned(),
        });
    }
    Ok(parts)
}

async fn google_batch(State(st): State<BatchState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(boundary) = boundary_of(&headers) else {
        return google_bad("Batch requests must be multipart/mixed with a boundary.");
    };
    let text = String::from_utf8_lossy(&body);
    let parts = match parse_parts(&text, &boundary) {
        Ok(p) => p,
        Err(e) => return google_bad(&e),
    };
    if parts.is_empty() {
        return google_bad("A batch request must contain at least one part.");
    }
    if parts.len() > GOOGLE_MAX {
        return google_bad(&format!("A batch request cannot contain more than {GOOGLE_MAX} calls."));
    }
    let out_boundary = format!("batch_{}", crate::ids::token(&mut st.shared.world().rng, "", 12));
    // Google documents that a batch's calls may run in any order: the sandbox runs them in
    // a shuffled order drawn from the seeded generator, so clients that rely on request
    // order fail here (reproducibly) before they fail in production.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.shuffle(&mut st.shared.world().rng);
    let mut answers: Vec<Option<(StatusCode, HeaderMap, Bytes)>> = vec![None; parts.len()];
    for &i in &order {
        let part = &parts[i];
        // `/calendar/v3/…` on Google; the sandbox serves it under `/google/`.
        let path = if part.path.starts_with("/google/") { part.path.clone() } else { format!("/google{}", part.path) };
        let mut rb =
            Request::builder().method(Method::from_bytes(part.method.as_bytes()).unwrap_or(Method::GET)).uri(path);
        // Outer headers other than Content-* apply unless the part sets its own.
        for (k, v) in headers.iter() {
            let name = k.as_str();
            if name.starts_with("content-") || part.headers.iter().any(|(pk, _)| pk.eq_ignore_ascii_case(name)) {
                continue;
            }
            rb = rb.header(k, v);
        }
        for (k, v) in &part.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
                rb = rb.header(k, v);
            }
        }
        answers[i] = Some(match rb.body(Body::from(part.body.clone())) {
            Ok(req) => run(&st.inner, req).await,
            Err(_) => {
                let resp = ApiError::bad_request("Malformed batch part.").into_response();
                (resp.status(), resp.headers().clone(), Bytes::new())
            }
        });
    }
    // Answers go back in request order, each under its part's Content-ID.
    let mut out = String::new();
    for (part, answer) in parts.iter().zip(answers) {
        let (status, h, b) = answer.expect("every part ran");
        out.push_str(&format!("--{out_boundary}\r\nContent-Type: application/http\r\n"));
        if let Some(id) = &part.content_id {
            let inner = id.trim_start_matches('<').trim_end_matches('>');
            out.push_str(&format!("Content-ID: <response-{inner}>\r\n"));
        }
        out.push_str(&format!("\r\nHTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or("")));
        for (k, v) in h.iter() {
            if k == header::CONTENT_LENGTH {
                continue;
            }
            out.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap_or_default()));
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
        out.push_str(&String::from_utf8_lossy(&b));
        out.push_str("\r\n");
    }
    out.push_str(&format!("--{out_boundary}--\r\n"));
    ([(header::CONTENT_TYPE, format!("multipart/mixed; boundary={out_boundary}"))], out).into_response()
}

// ---------------------------------------------------------------------------------------
// Graph

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphBatch {
    requests: Vec<GraphReq>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GraphReq {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    body: Option<Value>,
    #[serde(default)]
    depends_on: Vec<String>,
}

fn graph_bad(msg: &str) -> Response {
    crate::microsoft::batch_error(msg)
}

async fn graph_batch(State(st): State<BatchState>, headers: HeaderMap, body: Bytes) -> Response {
    let batch: GraphBatch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return graph_bad(&format!("Invalid batch payload: {e}")),
    };
    if batch.requests.is_empty() || batch.requests.len() > GRAPH_MAX {
        return graph_bad(&format!("The batch must contain between 1 and {GRAPH_MAX} requests."));
    }
    let mut seen: Vec<&str> = Vec::new();
    for r in &batch.requests {
        if seen.contains(&r.id.as_str()) {
            return graph_bad("Batch request ids must be unique.");
        }
        // Dependencies must name earlier requests: the sandbox runs them in order.
        if let Some(d) = r.depends_on.iter().find(|d| !seen.contains(&d.as_str())) {
            return graph_bad(&format!("Request {} depends on unknown or later request {d}.", r.id));
        }
        if r.url.starts_with("http://") || r.url.starts_with("https://") {
            return graph_bad("Batch request URLs must be relative.");
        }
        if r.body.is_some() && !r.headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
            return graph_bad(&format!("Request {} has a body but no Content-Type header.", r.id));
        }
        seen.push(&r.id);
    }
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::new();
    for r in batch.requests {
        if r.depends_on.iter().any(|d| statuses.get(d).is_none_or(|s| !(200..300).contains(s))) {
            statuses.insert(r.id.clone(), 424);
            responses.push(json!({"id": r.id, "status": 424, "headers": {"Content-Type": "application/json"},
                "body": {"error": {"code": "FailedDependency", "message": "A request this request depends on failed."}}}));
            continue;
        }
        let path = format!("/microsoft/graph/v1.0/{}", r.url.trim_start_matches('/'));
        let mut rb = Request::builder()
            .method(Method::from_bytes(r.method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET))
            .uri(path);
        if let Some(a) = headers.get(header::AUTHORIZATION) {
            rb = rb.header(header::AUTHORIZATION, a);
        }
        for (k, v) in &r.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
                rb = rb.header(k, v);
            }
        }
        let body = r.body.map(|b| b.to_string()).unwrap_or_default();
        let (status, h, b) = match rb.body(Body::from(body)) {
            Ok(req) => run(&st.inner, req).await,
            Err(_) => (StatusCode::BAD_REQUEST, HeaderMap::new(), Bytes::new()),
        };
        statuses.insert(r.id.clone(), status.as_u16());
        let mut hv = serde_json::Map::new();
        for (k, v) in h.iter() {
            if k != header::CONTENT_LENGTH {
                hv.insert(k.as_str().to_owned(), json!(v.to_str().unwrap_or_default()));
            }
        }
        let mut item = json!({"id": r.id, "status": status.as_u16(), "headers": hv});
        if !b.is_empty() {
            item["body"] = serde_json::from_slice(&b).unwrap_or_else(|_| json!(String::from_utf8_lossy(&b)));
        }
        responses.push(item);
    }
    // Graph returns responses in any order; so does the sandbox (shuffled, seeded).
    responses.shuffle(&mut st.shared.world().rng);
    axum::Json(json!({"responses": responses})).into_response()
}
