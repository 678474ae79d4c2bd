//! Values that carry tokens, codes, verifiers, CSRF tokens, keys or passwords print
//! `[redacted]` in `Debug`, so a log line or an error chain cannot leak them.

use calsync_domain::connection::Provider;
use calsync_domain::ids::{AuthorizationId, FirmId, SessionId, UserId};
use calsync_domain::tenant::{Actor, Role};
use calsync_server::api::connections::CallbackBody;
use calsync_server::cli::Cli;
use calsync_server::services::connections::CallbackInput;
use calsync_store::{AuthenticatedUser, WebSession};
use calsync_store::{Authorization, NewAuthorization, NewGrant};
use clap::Parser;

const SECRETS: [&str; 6] = ["ya29.SECRET", "1//REFRESH", "4/0ACODE", "VERIFIER-x", "CSRF-x", "hunter2-pass"];

fn assert_clean(shown: &str) {
    for s in SECRETS {
        assert!(!shown.contains(s), "{s} leaked: {shown}");
    }
}

#[test]
fn store_records_hide_their_secrets() {
    let (firm_id, user_id) = (FirmId::new(), UserId::new());
    let grant = NewGrant {
        firm_id,
        user_id,
        provider: Provider::Google,
        account_id: "1044".into(),
        account_email: "ann@gmail.test".into(),
        access_token: "ya29.SECRET".into(),
        refresh_token: Some("1//REFRESH".into()),
        expires_at: Some(chrono::Utc::now()),
        scopes: vec![],
    };
    let new_auth = NewAuthorization {
        firm_id,
        user_id,
        provider: Provider::Google,
        state_hash: "h".into(),
        pkce_verifier: "VERIFIER-x".into(),
        redirect_uri: "http://x/cb".into(),
        expires_at: chrono::Utc::now(),
    };
    let auth = Authorization {
        id: AuthorizationId::new(),
        provider: Provider::Google,
        pkce_verifier: "VERIFIER-x".into(),
        redirect_uri: "http://x/cb".into(),
    };
    let session = WebSession {
        id: SessionId::new(),
        user: AuthenticatedUser {
            actor: Actor { firm_id, user_id, role: Role::Staff },
            email: "ann@acme.test".into(),
            name: "Ann".into(),
            firm_name: "Acme".into(),
        },
        csrf_token: "CSRF-x".into(),
        expires_at: chrono::Utc::now(),
    };
    assert_clean(&format!("{grant:?} {new_auth:?} {auth:?} {session:?}"));
}

#[test]
fn callback_inputs_hide_the_code_and_state() {
    let input = CallbackInput { state: Some("CSRF-x".into()), code: Some("4/0ACODE".into()), ..Default::default() };
    let body: CallbackBody = serde_json::from_str(r#"{"state": "CSRF-x", "code": "4/0ACODE"}"#).unwrap();
    assert_clean(&format!("{input:?} {body:?}"));
    assert_eq!(body.code.unwrap().expose(), "4/0ACODE", "the value is still there for the exchange");
}

#[test]
fn command_line_settings_hide_keys_passwords_and_client_secrets() {
    let cli = Cli::try_parse_from([
        "calsync",
        "--database-url",
        "postgres://app:hunter2-pass@db/x",
        "--encryption-key",
        "k1:VERIFIER-x",
        "--google-client-secret",
        "ya29.SECRET",
        "--microsoft-client-secret",
        "1//REFRESH",
        "admin",
        "create-user",
        "--firm",
        "acme",
        "--email",
        "ann@acme.test",
        "--name",
        "Ann",
        "--role",
        "staff",
        "--password",
        "CSRF-x",
    ])
    .unwrap();
    assert_clean(&format!("{cli:?}"));
}
