//! Test harness: a sandbox on an ephemeral port and a reqwest client that never follows
//! redirects (the OAuth tests read the `Location` headers).

#![allow(dead_code)]

use calsync_sandbox::{SandboxConfig, serve};
use data_encoding::BASE64URL_NOPAD;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub struct Harness {
    pub base: String,
    pub http: Client,
}

pub async fn start() -> Harness {
    start_with(SandboxConfig { seed: Some(7), ..Default::default() }).await
}

pub async fn start_with(config: SandboxConfig) -> Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, config));
    let http = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Harness { base, http }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self.http.post(self.url(path)).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "control {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// A Google account with a full-scope token; returns the access token.
    pub async fn google_account(&self, email: &str) -> String {
        let v = self.control("/_sandbox/accounts", json!({"provider": "google", "email": email})).await;
        v["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn ms_account(&self, email: &str) -> String {
        let v = self.control("/_sandbox/accounts", json!({"provider": "microsoft", "email": email})).await;
        v["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn advance(&self, seconds: i64) {
        self.control("/_sandbox/clock", json!({"advance_seconds": seconds})).await;
    }

    pub async fn fault(&self, spec: Value) {
        self.control("/_sandbox/faults", spec).await;
    }

    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    pub async fn send(&self, method: reqwest::Method, token: &str, path: &str, body: Option<Value>) -> Response {
        let mut rb = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.unwrap()
    }
}

pub async fn json_of(resp: Response, expect: StatusCode) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, expect, "body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

pub fn s256(verifier: &str) -> String {
    BASE64URL_NOPAD.encode(Sha256::digest(verifier.as_bytes()).as_slice())
}

pub fn location(resp: &Response) -> url::Url {
    let loc = resp.headers().get("location").expect("redirect").to_str().unwrap();
    url::Url::parse(loc).unwrap()
}

pub fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// One request a test webhook receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: String,
    pub headers: std::collections::HashMap<String, String>,
    pub body: String,
}

/// A webhook receiver on an ephemeral port. Paths: `/ok` answers 200 (echoing a Graph
/// `validationToken` as text/plain); `/flaky` answers 503 to its first request, then
/// behaves like `/ok`; `/noecho` answers 200 with an empty body. Every request is
/// forwarded to the returned channel.
pub async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Received>) {
    use axum::extract::{Request, State};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    type Tx = (tokio::sync::mpsc::UnboundedSender<Received>, Arc<AtomicUsize>);
    async fn handle(State((tx, flaky)): State<Tx>, req: Request) -> axum::response::Response {
        use axum::response::IntoResponse;
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
        let body = String::from_utf8_lossy(&body).into_owned();
        let _ = tx.send(Received { path: path.clone(), query: query.clone(), headers, body });
        if path == "/flaky" && flaky.fetch_add(1, Ordering::SeqCst) == 0 {
            return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        if path == "/noecho" {
            return axum::http::StatusCode::OK.into_response();
        }
        let token = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "validationToken")
            .map(|(_, v)| v.into_owned());
        match token {
            Some(t) => ([(axum::http::header::CONTENT_TYPE, "text/plain")], t).into_response(),
            None => axum::http::StatusCode::ACCEPTED.into_response(),
        }
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(handle).with_state((tx, Arc::new(AtomicUsize::new(0))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, rx)
}

/// The next received request, failing the test after 5 s.
pub async fn next_received(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .expect("a delivery within 5 s")
        .expect("receiver open")
}
