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
